// The process-wide half of the integration: one EdetailDevice per signed-in rep, told about
// connectivity and app lifecycle, syncing with the app's SSO token in the foreground and from
// BGTaskScheduler in the background.
import BackgroundTasks
import Network
import SwiftUI
import edetail_ffi

/// What edetail needs from the app's sign-in. The app implements it with its SSO (MSAL, AppAuth…).
protocol RepSession: Sendable {
    var repId: String { get } // the rep's id, never a name
    var hubUrl: String { get }
    var deviceId: String { get } // issued by the hub when this iPad was enrolled
    func accessToken() async -> String? // nil: signed out
    func refreshAccessToken() async
}

/// PLACEHOLDER: replace with your SSO. Without a token, sync stops with ApiError.AuthRequired.
struct PlaceholderSession: RepSession {
    let repId = "rep-placeholder", hubUrl = "https://hub.example.invalid", deviceId = "device-placeholder"
    func accessToken() async -> String? { nil }
    func refreshAccessToken() async {}
}

/// The library asks for the bearer token on every request and calls refresh() after a 401.
final class SessionTokens: TokenProvider {
    let session: any RepSession
    init(_ session: any RepSession) { self.session = session }

    func token() async throws -> String {
        if let token = await session.accessToken() { return token } else { throw TokenProviderError.Unavailable(reason: "signed out") }
    }

    func refresh() async { await session.refreshAccessToken() }
}

/// The device's small writes (bridge messages, lifecycle, heartbeats): off the main thread, in order.
let deviceQueue = DispatchQueue(label: "edetail.device", qos: .userInitiated)

@main
struct EdetailShellApp: App {
    @Environment(\.scenePhase) private var scenePhase
    private let device: EdetailDevice
    private let network = NWPathMonitor()

    init() {
        let session: any RepSession = PlaceholderSession()
        let dir = URL.applicationSupportDirectory.appending(path: "edetail/\(session.repId)")
        do {
            let key = try String(contentsOf: Bundle.main.url(forResource: "publisher", withExtension: "pub")!, encoding: .utf8)
            device = try EdetailDevice.open(options: DeviceOptions(dataDir: dir.path(percentEncoded: false), repId: session.repId, publisherKeys: [key]))
            try device.configureSync(hubUrl: session.hubUrl, deviceId: session.deviceId, tokens: SessionTokens(session))
        } catch {
            fatalError("edetail: cannot open the rep's data: \(error)") // a real app shows this and offers support
        }
        let device = device
        network.pathUpdateHandler = { path in device.setOnline(online: path.status == .satisfied) }
        network.start(queue: DispatchQueue(label: "edetail.network"))
        BackgroundSync.register(device) // before the app finishes launching, as BGTaskScheduler requires
    }

    var body: some Scene {
        WindowGroup { CallScreen(device: device) } // the slides, and remote presenting over them
            .onChange(of: scenePhase) { _, phase in
                deviceQueue.async { device.setLifecycle(lifecycle: phase == .background ? AppLifecycle.background : AppLifecycle.foreground) }
                if phase == .active { Task.detached { _ = try? await device.syncNow() } }
                if phase == .background { BackgroundSync.schedule(afterMs: 0) }
            }
    }
}

/// Background sync: a BGProcessingTask that needs a network, expiring into cancelSync(), rescheduled
/// when the engine asks (its backoff after a failure) or else in a few hours.
enum BackgroundSync {
    static let identifier = "com.example.edetail.sync"
    static let regularMs: UInt64 = 4 * 3600 * 1000

    static func register(_ device: EdetailDevice) {
        BGTaskScheduler.shared.register(forTaskWithIdentifier: identifier, using: nil) { task in
            let sync = Task {
                let synced = (try? await device.syncNow()) != nil
                schedule(afterMs: synced ? regularMs : device.nextSyncInMs() ?? regularMs)
                task.setTaskCompleted(success: synced)
            }
            // Time is up: stop the Rust sync (a cancelled Task does not); it answers SyncCancelled
            // at once, keeping what it already uploaded and downloaded.
            task.expirationHandler = { device.cancelSync(); sync.cancel() }
        }
    }

    static func schedule(afterMs: UInt64) {
        let request = BGProcessingTaskRequest(identifier: identifier)
        request.requiresNetworkConnectivity = true
        request.earliestBeginDate = Date(timeIntervalSinceNow: Double(afterMs) / 1000)
        try? BGTaskScheduler.shared.submit(request)
    }
}
