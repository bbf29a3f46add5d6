// Presenting: a WKWebView on the shell's origin (edetail://library/), a call on the first
// presentable bundle, and the slide bridge. edetail.js (served at /_edetail/edetail.js) posts
// each message to `window.webkit.messageHandlers.edetail`; the library answers and the reply goes
// back through `window.edetail._receive(string)`. The shell never interprets a message except to
// follow a navigation the library asked for. Decks made for other vendors (ADR 0013): the runtime
// scripts run first in every slide and frame (a document-start user script), native `veeva` and
// `nativeCall` handlers and `veeva:` / `objc://` navigations are handed to the page's containers.js.
// A slide's <meta name="viewport" content="width=2048px"> is honoured by WKWebView itself.
import SwiftUI
import WebKit
import edetail_ffi

/// One stable origin for every bundle, so localStorage and `../shared/` paths keep working.
let scheme = "edetail"
let origin = "\(scheme)://library"
/// The containers.js function each vendor message handler (by name) and navigation (by URL scheme) is handed to.
let containerCalls = ["veeva": "window.edetailContainers.veeva.request", "nativeCall": "window.edetailContainers.oce.nativeCall",
                      "objc": "window.edetailContainers.agnitio.invoke"]

struct PresenterView: UIViewRepresentable {
    let device: EdetailDevice
    let remote: RemotePresenting

    func makeCoordinator() -> SlideBridge { SlideBridge(device: device) }

    func makeUIView(context: Context) -> WKWebView {
        let config = WKWebViewConfiguration()
        config.setURLSchemeHandler(AssetSchemeHandler(device: device), forURLScheme: scheme)
        config.userContentController.add(context.coordinator, name: "edetail")
        // WKWebView refuses handlers a page defines: the vendor libraries' handlers are registered here.
        config.userContentController.add(context.coordinator, name: "veeva")
        config.userContentController.add(context.coordinator, name: "nativeCall")
        config.allowsInlineMediaPlayback = true
        config.mediaTypesRequiringUserActionForPlayback = []
        let webView = WKWebView(frame: .zero, configuration: config)
        webView.navigationDelegate = context.coordinator
        for direction in [UISwipeGestureRecognizer.Direction.left, .right] {
            let swipe = UISwipeGestureRecognizer(target: context.coordinator, action: #selector(SlideBridge.swiped)); swipe.direction = direction
            webView.addGestureRecognizer(swipe)
        }
        context.coordinator.webView = webView
        remote.bridge = context.coordinator
        context.coordinator.startCall()
        return webView
    }

    func updateUIView(_ webView: WKWebView, context: Context) {}

    static func dismantleUIView(_ webView: WKWebView, coordinator: SlideBridge) {
        webView.configuration.userContentController.removeAllScriptMessageHandlers() // they retain the coordinator
        coordinator.endCall()
    }
}

final class SlideBridge: NSObject, WKScriptMessageHandler, WKNavigationDelegate {
    let device: EdetailDevice
    weak var webView: WKWebView?
    private var heartbeat: Timer?

    init(device: EdetailDevice) { self.device = device }

    func startCall() {
        deviceQueue.async { [self] in
            // A real app lets the rep pick the HCP and the deck; the shell presents the first one.
            guard let bundle = try? device.bundles().first(where: { $0.status == .ready }),
                  let call = try? device.startCall(hcpId: nil, channel: .faceToFace, bundleId: bundle.bundleId, presentationId: nil) else { return }
            // The runtime scripts first in every slide and frame, added before the first slide loads.
            let veevaPages = bundle.slides.filter { $0.bridge == BridgeKind.veeva }.compactMap { $0.url.removingPercentEncoding }
            let script = WKUserScript(source: runtimeScript(veevaPages: veevaPages), injectionTime: .atDocumentStart, forMainFrameOnly: false)
            DispatchQueue.main.async {
                self.webView?.configuration.userContentController.addUserScript(script)
                self.load(call.first.url)
            }
        }
        // While presenting, a heartbeat every few seconds: after a crash, dwell ends at the last one.
        heartbeat = Timer.scheduledTimer(withTimeInterval: 5, repeats: true) { [device] _ in deviceQueue.async { try? device.heartbeat() } }
    }

    func endCall() {
        heartbeat?.invalidate()
        deviceQueue.async { [device] in if let call = try? device.openCall() { try? device.endCall(callId: call) } }
        BackgroundSync.schedule(afterMs: 0) // upload the call soon
    }

    /// edetail.js, containers.js and, in Veeva slides only (`veevaPages`: decoded URL paths), veeva-clm.js,
    /// read through the library like any asset.
    func runtimeScript(veevaPages: [String]) -> String {
        func source(_ name: String) -> String { String(decoding: (try? device.resolveAsset(urlPath: "/_edetail/\(name)", range: nil).readAll()) ?? Data(), as: UTF8.self) }
        let veeva = "if (\(Self.jsLiteral(veevaPages)).indexOf(decodeURIComponent(location.pathname)) >= 0) {\n\(source("veeva-clm.js"))\n}"
        return [source("edetail.js"), source("containers.js"), veeva].joined(separator: "\n")
    }

    func userContentController(_ controller: WKUserContentController, didReceive message: WKScriptMessage) {
        // A vendor library's handler (veeva, nativeCall): the posted value goes to containers.js as a JSON literal.
        if let call = containerCalls[message.name] { return containers(call, message.body, in: message.frameInfo) }
        guard let body = message.body as? String else { return }
        deviceQueue.async { [self] in
            let reply = device.handleBridgeMessage(message: body)
            DispatchQueue.main.async {
                self.webView?.evaluateJavaScript("window.edetail && window.edetail._receive(\(Self.jsLiteral(reply)))", in: message.frameInfo, in: .page) // answer the frame that asked
                if let next = Self.navigationTarget(message: body, reply: reply) { self.load(next) }
            }
        }
    }

    /// `veeva:` and `objc://` navigations (main frame and subframes) are vendor container calls: cancelled,
    /// and the URL handed to containers.js in the frame that made them.
    func webView(_ webView: WKWebView, decidePolicyFor action: WKNavigationAction, decisionHandler: @escaping (WKNavigationActionPolicy) -> Void) {
        guard let url = action.request.url, let call = containerCalls[url.scheme?.lowercased() ?? ""] else { return decisionHandler(.allow) }
        decisionHandler(.cancel)
        containers(call, url.absoluteString, in: action.sourceFrame)
    }

    /// Calls containers.js in `frame` with `value` as a JavaScript literal (JSON: quoted and escaped, never spliced raw).
    private func containers(_ call: String, _ value: Any, in frame: WKFrameInfo?) { webView?.evaluateJavaScript("window.edetailContainers && \(call)(\(Self.jsLiteral(value)))", in: frame, in: .page) }

    /// The shell's own navigation (a swipe): the slide is reloaded only when the deck moved.
    @objc func swiped(_ swipe: UISwipeGestureRecognizer) {
        let to = swipe.direction == .left ? Navigation.next : Navigation.previous
        deviceQueue.async { [self] in
            // "next" on the last slide, "previous" on the first: nothing moved, nothing to reload.
            guard let call = try? device.openCall(), let target = try? device.navigate(callId: call, to: to, hcpLed: false), target.moved else { return }
            DispatchQueue.main.async { self.load(target.url) }
        }
    }

    /// Loads a slide: the library's URL paths are already percent-encoded and may carry a route (`?path=`, `#`).
    func load(_ path: String) { if let url = URL(string: origin + path) { webView?.load(URLRequest(url: url)) } }

    /// The URL path to load when the message was a `navigate` the library accepted, or its result carries
    /// a `navigate` (a vendor call that moved the deck, ADR 0013); nil when nothing moved.
    static func navigationTarget(message: String, reply: String) -> String? {
        func object(_ s: String) -> [String: Any]? { try? JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any] }
        guard let result = object(reply)?["result"] as? [String: Any] else { return nil }
        let nav = object(message)?["method"] as? String == "navigate" ? result : result["navigate"] as? [String: Any]
        return nav?["moved"] as? Bool == false ? nil : nav?["url"] as? String
    }

    /// A value as a JavaScript literal (JSON syntax: a string is quoted and escaped, never spliced raw), else null.
    /// Wrapped in an array and checked first: JSONSerialization raises an Objective-C exception, not a Swift error.
    static func jsLiteral(_ value: Any) -> String {
        JSONSerialization.isValidJSONObject([value]) ? String(decoding: try! JSONSerialization.data(withJSONObject: [value]).dropFirst().dropLast(), as: UTF8.self) : "null"
    }
}
