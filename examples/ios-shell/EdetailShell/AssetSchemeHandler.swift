// Asset serving: every edetail://library/<bundle-id>/<path> (and /_edetail/…) request is answered
// by the library (resolveAsset) and streamed in chunks, with the request's Range header passed
// through so video seeking works. WebKit calls start/stop on the main thread and throws if a
// stopped task is touched, so reads happen on a background queue and each delivery hops to the
// main thread, where `active` says whether the task is still wanted.
import WebKit
import edetail_ffi

final class AssetSchemeHandler: NSObject, WKURLSchemeHandler {
    private static let chunkBytes: UInt32 = 256 * 1024
    private let device: EdetailDevice
    private let queue = DispatchQueue(label: "edetail.assets", qos: .userInitiated, attributes: .concurrent)
    private var active = Set<ObjectIdentifier>() // main thread only

    init(device: EdetailDevice) { self.device = device }

    func webView(_ webView: WKWebView, start task: any WKURLSchemeTask) {
        guard let url = task.request.url else { return task.didFailWithError(URLError(.badURL)) }
        let id = ObjectIdentifier(task)
        active.insert(id)
        let path = URLComponents(url: url, resolvingAgainstBaseURL: false)?.percentEncodedPath ?? "/"
        let range = task.request.value(forHTTPHeaderField: "Range")
        queue.async { [self] in
            let asset = device.resolveAsset(urlPath: path, range: range)
            defer { asset.cancel() } // also when the task was stopped: releases the file at once
            let headers = Dictionary(asset.headers().map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
            let response = HTTPURLResponse(url: url, statusCode: Int(asset.status()), httpVersion: "HTTP/1.1", headerFields: headers)!
            guard deliver(id, { task.didReceive(response) }) else { return }
            while true {
                let chunk: Data
                do { chunk = try asset.read(maxBytes: Self.chunkBytes) } catch { _ = deliver(id) { task.didFailWithError(error); self.active.remove(id) }; return }
                if chunk.isEmpty { break }
                guard deliver(id, { task.didReceive(chunk) }) else { return }
            }
            _ = deliver(id) { task.didFinish(); self.active.remove(id) }
        }
    }

    func webView(_ webView: WKWebView, stop task: any WKURLSchemeTask) {
        active.remove(ObjectIdentifier(task)) // the reading loop stops at its next chunk
    }

    /// Runs `call` on the main thread unless WebKit has stopped the task meanwhile.
    private func deliver(_ id: ObjectIdentifier, _ call: () -> Void) -> Bool {
        DispatchQueue.main.sync {
            guard active.contains(id) else { return false }
            call()
            return true
        }
    }
}
