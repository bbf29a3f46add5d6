// Presenting: a WKWebView on the shell's origin (edetail://library/), a call on the first
// presentable bundle, and the slide bridge. edetail.js (served at /_edetail/edetail.js) posts
// each message to `window.webkit.messageHandlers.edetail`; the library answers and the reply goes
// back through `window.edetail._receive(string)`. The shell never interprets a message except to
// follow a navigation the library asked for.
import SwiftUI
import WebKit
import edetail_ffi

/// One stable origin for every bundle, so localStorage and `../shared/` paths keep working.
let scheme = "edetail"
let origin = "\(scheme)://library"

struct PresenterView: UIViewRepresentable {
    let device: EdetailDevice

    func makeCoordinator() -> SlideBridge { SlideBridge(device: device) }

    func makeUIView(context: Context) -> WKWebView {
        let config = WKWebViewConfiguration()
        config.setURLSchemeHandler(AssetSchemeHandler(device: device), forURLScheme: scheme)
        config.userContentController.add(context.coordinator, name: "edetail")
        config.allowsInlineMediaPlayback = true
        config.mediaTypesRequiringUserActionForPlayback = []
        let webView = WKWebView(frame: .zero, configuration: config)
        context.coordinator.webView = webView
        context.coordinator.startCall()
        return webView
    }

    func updateUIView(_ webView: WKWebView, context: Context) {}

    static func dismantleUIView(_ webView: WKWebView, coordinator: SlideBridge) {
        webView.configuration.userContentController.removeScriptMessageHandler(forName: "edetail")
        coordinator.endCall()
    }
}

final class SlideBridge: NSObject, WKScriptMessageHandler {
    let device: EdetailDevice
    weak var webView: WKWebView?
    private var heartbeat: Timer?

    init(device: EdetailDevice) { self.device = device }

    func startCall() {
        deviceQueue.async { [self] in
            // A real app lets the rep pick the HCP and the deck; the shell presents the first one.
            guard let bundle = try? device.bundles().first(where: { $0.status == .ready }),
                  let call = try? device.startCall(hcpId: nil, channel: .faceToFace, bundleId: bundle.bundleId, presentationId: nil)
            else { return }
            DispatchQueue.main.async { self.load(call.first.url) }
        }
        // While presenting, a heartbeat every few seconds: after a crash, dwell ends at the last one.
        heartbeat = Timer.scheduledTimer(withTimeInterval: 5, repeats: true) { [device] _ in
            deviceQueue.async { try? device.heartbeat() }
        }
    }

    func endCall() {
        heartbeat?.invalidate()
        deviceQueue.async { [device] in
            if let call = try? device.openCall() { try? device.endCall(callId: call) }
        }
        BackgroundSync.schedule(afterMs: 0) // upload the call soon
    }

    func userContentController(_ controller: WKUserContentController, didReceive message: WKScriptMessage) {
        guard let body = message.body as? String else { return }
        let frame = message.frameInfo // answer the frame that asked
        deviceQueue.async { [self] in
            let reply = device.handleBridgeMessage(message: body)
            let next = Self.navigationTarget(message: body, reply: reply)
            DispatchQueue.main.async {
                let js = "window.edetail && window.edetail._receive(\(Self.jsString(reply)))"
                self.webView?.evaluateJavaScript(js, in: frame, in: .page)
                if let next { self.load(next) }
            }
        }
    }

    /// Loads a slide: the library's URL paths are plain paths, so percent-encode them ("50% off.html").
    private func load(_ path: String) {
        let encoded = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
        if let url = URL(string: origin + encoded) { webView?.load(URLRequest(url: url)) }
    }

    /// The URL path to load when the message was a `navigate` the library accepted, else nil.
    static func navigationTarget(message: String, reply: String) -> String? {
        func object(_ s: String) -> [String: Any]? { try? JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any] }
        guard object(message)?["method"] as? String == "navigate" else { return nil }
        return (object(reply)?["result"] as? [String: Any])?["url"] as? String
    }

    /// The reply as a JavaScript string literal (JSON string syntax).
    static func jsString(_ s: String) -> String {
        String(data: try! JSONEncoder().encode(s), encoding: .utf8)!
    }
}
