"""A camera showing ArUco markers at known places, served by GStreamer's RTSP server.

White 640x360 frames at 25 fps: marker 3 (DICT_4X4_50, 80 px) stands still with its top-left
corner at (40, 40); marker 7 (80 px) crosses the picture back and forth at 160 px/s, its top at
y=200 (one way takes 3.5 s). H.264 (x264, one keyframe a
second, constant quality: a rate-controlled encoder's first pictures after it starts are
too coarse for the markers to be found), mount /test. Tests know where each marker is without looking.

usage: marker_camera.py PORT     (prints READY rtsp://127.0.0.1:PORT/test)
Runs with the test venv's Python (OpenCV) and the system's GStreamer bindings.
"""
import sys

import cv2
import gi
import numpy as np

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

W, H, FPS, SIZE = 640, 360, 25, 80
DICT = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
# Each marker with a white quiet zone (its border is black), as printed markers have.
MARKERS = {i: cv2.aruco.generateImageMarker(DICT, i, SIZE) for i in (3, 7)}
STILL = (40, 40)
SPEED = 160  # px/s


def frame(n):
    img = np.full((H, W, 3), 255, np.uint8)
    x, y = STILL
    img[y:y + SIZE, x:x + SIZE] = MARKERS[3][:, :, None]
    t = n / FPS
    # Back and forth across the picture (a sudden jump would be no motion to follow).
    span = W - SIZE
    d = int(t * SPEED) % (2 * span)
    mx = d if d < span else 2 * span - d
    img[200:200 + SIZE, mx:mx + SIZE] = MARKERS[7][:, :, None]
    return img


class Factory(GstRtspServer.RTSPMediaFactory):
    def do_gen_key(self, url):
        # One stream for every client of the path, whatever port it came through (a test's
        # proxy): like a real camera, whose encoder runs on whoever watches, a client joining
        # later gets the stream mid-way. (GStreamer's default key includes the port.)
        return url.abspath

    def do_create_element(self, url):
        launch = (
            f"appsrc name=src is-live=true format=time do-timestamp=true "
            f"caps=video/x-raw,format=BGR,width={W},height={H},framerate={FPS}/1 ! videoconvert ! "
            f"video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=superfast key-int-max={FPS} "
            f"pass=quant quantizer=20 ! rtph264pay name=pay0 pt=96 config-interval=1"
        )
        bin_ = Gst.parse_launch(launch)
        src = bin_.get_by_name("src")
        state = {"n": 0}

        def push():
            # Paced by the main loop's clock (a live camera), stamped on arrival.
            buf = Gst.Buffer.new_wrapped(frame(state["n"]).tobytes())
            buf.duration = Gst.SECOND // FPS
            state["n"] += 1
            ok = src.emit("push-buffer", buf) == Gst.FlowReturn.OK
            # Until the media plays, pushes are refused; once it played, a refusal means the
            # media was torn down: the timer ends with it.
            state["played"] = state.get("played", False) or ok
            return ok or not state["played"]

        GLib.timeout_add(1000 // FPS, push)
        return bin_


Gst.init(None)
s = GstRtspServer.RTSPServer()
s.set_address("127.0.0.1")
s.set_service(sys.argv[1])
f = Factory()
f.set_shared(True)
s.get_mount_points().add_factory("/test", f)
s.attach(None)
print(f"READY rtsp://127.0.0.1:{s.get_bound_port()}/test", flush=True)
GLib.MainLoop().run()
