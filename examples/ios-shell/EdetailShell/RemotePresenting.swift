// Remote detailing (ADR 0023): the call on screen presented to doctors following from a link.
// "Present remotely" opens a session for the open call (a network request: off the main
// thread) and offers its join link as a QR code and through the share sheet; a thread of its
// own reads the session's events and updates the bar on the main thread. Every slide the call
// moves to reaches the doctors by itself; with control handed over, their navigation moves the
// call and the shell loads the slide it moved to.
import CoreImage.CIFilterBuiltins
import SwiftUI
import edetail_ffi

/// The call screen: the slides, with the remote bar over them.
struct CallScreen: View {
    let device: EdetailDevice
    @StateObject private var remote: RemotePresenting

    init(device: EdetailDevice) {
        self.device = device
        _remote = StateObject(wrappedValue: RemotePresenting(device: device))
    }

    var body: some View {
        PresenterView(device: device, remote: remote)
            .overlay(alignment: .topTrailing) { RemoteBar(remote: remote).padding() }
            .sheet(isPresented: $remote.inviting) { if let session = remote.session { InviteSheet(session: session) } }
            .onDisappear { remote.endMeeting() }
    }
}

/// The remote session of the call on screen. Main-thread state, published to the bar.
final class RemotePresenting: ObservableObject {
    let device: EdetailDevice
    weak var bridge: SlideBridge? // loads the slides the doctors move the call to
    @Published private(set) var session: RemoteSession?
    @Published private(set) var waiting: [String] = [] // attendees in the waiting room (opaque ids, never names)
    @Published private(set) var hcpLeads = false
    @Published private(set) var reconnecting = false
    @Published private(set) var opening = false
    @Published private(set) var problem: String?
    @Published var inviting = false

    init(device: EdetailDevice) { self.device = device }

    /// Opens (or, for a call already presented, resumes) the open call's session: blocks on the network.
    func open() {
        opening = true
        problem = nil
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            let result = Result { try device.openCall().map { try device.openRemoteSession(callId: $0, minutes: 60, waitingRoom: true) } }
            DispatchQueue.main.async { [self] in
                opening = false
                switch result {
                case .success(let opened?): session = opened; hcpLeads = false; inviting = true; listen(to: opened)
                case .success(nil): problem = "No call is open"
                case .failure(let error): problem = "Cannot present remotely: \(error)" // AuthRequired, SyncFailed (offline)…
                }
            }
        }
    }

    /// Reads the session's events until it ends, on a thread of its own: `nextEvent` blocks.
    private func listen(to session: RemoteSession) {
        Thread.detachNewThread { [weak self] in
            while self != nil {
                guard let event = session.nextEvent(timeoutMs: 1_000) else { continue } // none within a second
                DispatchQueue.main.async { self?.handle(event) }
                if case .ended = event { return }
                if case .replaced = event { return } // the session is released with this thread
            }
        }
    }

    private func handle(_ event: RemoteEvent) {
        switch event {
        case .attendeeJoined(let attendee, let waits):
            waiting.removeAll { $0 == attendee }
            if waits { waiting.append(attendee) }
        case .attendeeLeft(let attendee): waiting.removeAll { $0 == attendee }
        case .navigated(_, _, let url): // performed and recorded (HCP-led) by the library: show it
            bridge?.load(url)
        case .disconnected: reconnecting = true
        case .connected: reconnecting = false
        case .ended, .replaced: session = nil; waiting = []; reconnecting = false; hcpLeads = false; inviting = false
        case .navigationRefused, .tapped: break
        }
    }

    func admitNext() {
        guard let session, !waiting.isEmpty else { return }
        try? session.admit(attendee: waiting.removeFirst())
    }

    func toggleControl() {
        guard let session else { return }
        let to = hcpLeads ? RemoteControl.rep : RemoteControl.hcp
        do { try session.setControl(to: to); hcpLeads = to == .hcp } catch { problem = "\(error)" }
    }

    /// Ends the meeting for everyone (a network request); the event thread then sees `.ended`.
    func endMeeting() {
        guard let session else { return }
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            do { try session.end() } catch { DispatchQueue.main.async { self.problem = "The meeting could not be ended: \(error)" } }
        }
    }
}

/// The bar over the slides: present, invite, admit, hand over control, end.
struct RemoteBar: View {
    @ObservedObject var remote: RemotePresenting

    var body: some View {
        VStack(alignment: .trailing, spacing: 8) {
            if remote.reconnecting { Text("Connection lost: reconnecting…").padding(6).background(.yellow) }
            if let problem = remote.problem { Text(problem).padding(6).background(.background) }
            if remote.session == nil {
                Button("Present remotely") { remote.open() }.disabled(remote.opening)
            } else {
                Button("Invite") { remote.inviting = true }
                if !remote.waiting.isEmpty { Button("Admit (\(remote.waiting.count) waiting)") { remote.admitNext() } }
                Button(remote.hcpLeads ? "Take control back" : "Give control") { remote.toggleControl() }
                Button("End meeting", role: .destructive) { remote.endMeeting() }
            }
        }
        .buttonStyle(.borderedProminent)
    }
}

/// The join link as a QR code and through the share sheet. It carries the session's secret:
/// share it only with those invited.
struct InviteSheet: View {
    let session: RemoteSession
    @State private var sharing = false

    var body: some View {
        let link = session.joinUrl()
        VStack(spacing: 16) {
            if let qr = qrCode(link) { Image(uiImage: qr).interpolation(.none).resizable().frame(width: 240, height: 240) }
            Text(link).font(.footnote).textSelection(.enabled)
            Text("Valid until \(Date(timeIntervalSince1970: Double(session.expiresAtMs()) / 1000).formatted(date: .omitted, time: .shortened))")
            Button("Share link…") { sharing = true }.buttonStyle(.borderedProminent)
        }
        .padding()
        .sheet(isPresented: $sharing) { ShareSheet(items: [link]) }
    }
}

/// UIKit's share sheet (UIActivityViewController) in SwiftUI.
struct ShareSheet: UIViewControllerRepresentable {
    let items: [Any]
    func makeUIViewController(context: Context) -> UIActivityViewController { UIActivityViewController(activityItems: items, applicationActivities: nil) }
    func updateUIViewController(_ controller: UIActivityViewController, context: Context) {}
}

/// `text` as a QR code (CoreImage's CIQRCodeGenerator), scaled up without smoothing.
func qrCode(_ text: String) -> UIImage? {
    let filter = CIFilter.qrCodeGenerator()
    filter.message = Data(text.utf8)
    guard let code = filter.outputImage?.transformed(by: CGAffineTransform(scaleX: 8, y: 8)),
          let image = CIContext().createCGImage(code, from: code.extent) else { return nil }
    return UIImage(cgImage: image)
}
