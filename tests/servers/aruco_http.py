"""An inference server that follows AVA's HTTP extension contract, for openva's tests.

The model is OpenCV's ArUco detector (DICT_4X4_50): every marker found becomes an `entity`
inference tagged `marker-<id>`, its box in fractions of the image received; no marker -> 204.
It decodes what AVA sent (image/jpeg, image/png, image/bmp, and openva's documented
`image/x-raw; format=...; width=...; height=...; stride=...`) with OpenCV, never trusting the
sender, and logs each request as a JSON line (headers, content type, image size, what it found)
so tests can check what went over the wire.

usage: aruco_http.py --port 0 --log FILE [--basic USER:PASSWORD] [--header NAME:VALUE] [--tls CERT KEY]
Prints `READY http://127.0.0.1:PORT` when listening. Behaviour switches, by query string on the
endpoint URL: busy=N (answer 503 with Retry-After: N to the first requests while the file
BUSY_FILE exists), slow=S (sleep S seconds before answering), status=N (always answer N),
text=1 (answer text/plain), big=MB (answer that many MiB of JSON), garbage=1 (invalid JSON).
"""
import argparse, base64, json, os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=0)
p.add_argument("--log", required=True)
p.add_argument("--basic")
p.add_argument("--header")
p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this certificate")
a = p.parse_args()

DICT = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
DETECTOR = cv2.aruco.ArucoDetector(DICT, cv2.aruco.DetectorParameters())
LOCK = threading.Lock()


def raw_image(body, params):
    """An image/x-raw body as BGR, from its media-type parameters."""
    fmt = params["format"]
    w, h, stride = int(params["width"]), int(params["height"]), int(params["stride"])
    if fmt == "yuv420p":
        y = np.frombuffer(body, np.uint8, w * h).reshape(h, w)
        return cv2.cvtColor(y, cv2.COLOR_GRAY2BGR)
    bpp = {"rgb24": 3, "bgr24": 3, "rgba": 4, "bgra": 4, "argb": 4, "abgr": 4}[fmt]
    rows = np.frombuffer(body, np.uint8, stride * h).reshape(h, stride)[:, : w * bpp]
    px = rows.reshape(h, w, bpp)
    order = {"rgb24": [2, 1, 0], "bgr24": [0, 1, 2], "rgba": [2, 1, 0], "bgra": [0, 1, 2],
             "argb": [3, 2, 1], "abgr": [1, 2, 3]}[fmt]
    return np.ascontiguousarray(px[:, :, order])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", ctype="application/json", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if status != 204:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        t0 = time.time()
        q = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        ctype = self.headers.get("Content-Type", "")
        essence, *rest = [s.strip() for s in ctype.split(";")]
        params = dict(s.split("=", 1) for s in rest if "=" in s)
        entry = {"t": time.time(), "path": self.path, "contentType": ctype, "bytes": len(body),
                 "headers": {k.lower(): v for k, v in self.headers.items()}}
        status, reply, rtype, extra = 204, b"", "application/json", []
        try:
            if a.basic and self.headers.get("Authorization") != "Basic " + base64.b64encode(a.basic.encode()).decode():
                status = 401
            elif a.header and self.headers.get(a.header.split(":", 1)[0]) != a.header.split(":", 1)[1]:
                status = 403
            elif "busy" in q and os.path.exists(a.log + ".busy"):
                status, extra = 503, [("Retry-After", q["busy"])]
            elif "status" in q:
                status = int(q["status"])
                if status != 204:  # 204 has no body
                    reply, rtype = b"model unavailable", "text/plain"
            else:
                if essence == "image/x-raw":
                    img = raw_image(body, params)
                else:
                    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
                if img is None:
                    status, reply, rtype = 400, b"cannot decode the image", "text/plain"
                else:
                    h, w = img.shape[:2]
                    entry["width"], entry["height"] = w, h
                    # The letterbox bars AVA's pad mode adds: mean of the first and last rows.
                    entry["topRowMean"] = float(img[0].mean())
                    corners, ids, _ = DETECTOR.detectMarkers(img)
                    found = []
                    for c, i in zip(corners, [] if ids is None else ids.flatten()):
                        xs, ys = c[0][:, 0], c[0][:, 1]
                        box = {"l": float(xs.min()) / w, "t": float(ys.min()) / h,
                               "w": float(xs.max() - xs.min()) / w, "h": float(ys.max() - ys.min()) / h}
                        found.append({"type": "entity", "subtype": "objectDetection",
                                      "entity": {"tag": {"value": f"marker-{int(i)}", "confidence": 1.0}, "box": box}})
                    entry["found"] = found
                    if "slow" in q:
                        time.sleep(float(q["slow"]))
                    if "text" in q:
                        status, reply, rtype = 200, b"a cat", "text/plain"
                    elif "garbage" in q:
                        status, reply = 200, b"{\"inferences\": [ {"
                    elif "big" in q:
                        pad = "x" * (int(float(q["big"]) * (1 << 20)))
                        status, reply = 200, json.dumps({"inferences": found, "pad": pad}).encode()
                    elif found:
                        status, reply = 200, json.dumps({"inferences": found}).encode()
        except Exception as e:  # a test server: say what went wrong, keep serving
            status, reply, rtype = 500, str(e).encode(), "text/plain"
            entry["error"] = str(e)
        entry["status"] = status
        entry["ms"] = (time.time() - t0) * 1000  # the server's own time: decoding and detecting
        with LOCK, open(a.log, "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.answer(status, reply, rtype, extra)


server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
scheme = "http"
if a.tls:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*a.tls)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    scheme = "https"
print(f"READY {scheme}://localhost:{server.server_address[1]}" if a.tls else f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
