#!/usr/bin/python3
"""A real RTSP server we did not write, for openva's end-to-end tests: GStreamer's
gst-rtsp-server (Debian packages), serving a live test pattern as H.264 High without B-frames.

Run with Debian's python (/usr/bin/python3): python3-gi is not in other pythons.
Prints "READY rtsp://ADDR:PORT/test" once listening; exits on SIGINT/SIGTERM.

  /test  videotestsrc (live) -> x264enc (High, no B-frames) -> rtph264pay
"""
import argparse

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import Gst, GstRtsp, GstRtspServer  # noqa: E402

import rtsp_serve  # noqa: E402  (tools/, beside this script)

p = argparse.ArgumentParser()
p.add_argument("--port", default="8554")
p.add_argument("--address", default="127.0.0.1")
p.add_argument("--auth", choices=["none", "basic", "digest"], default="none")
p.add_argument("--user", default="user")
p.add_argument("--password", default="pass")
p.add_argument("--width", type=int, default=640)
p.add_argument("--height", type=int, default=360)
p.add_argument("--fps", type=int, default=25)
p.add_argument("--gop", type=int, default=50, help="keyframe interval in frames")
p.add_argument("--bitrate", type=int, default=1000, help="kbit/s")
args = p.parse_args()

Gst.init(None)

# superfast, not ultrafast: ultrafast yields Constrained Baseline even with profile=high caps.
VIDEO = (
    f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={args.width},height={args.height},"
    f"framerate={args.fps}/1 ! x264enc tune=zerolatency speed-preset=superfast bframes=0 "
    f"key-int-max={args.gop} bitrate={args.bitrate} ! video/x-h264,profile=high ! "
    "rtph264pay name=pay0 pt=96 config-interval=-1"
)

server = GstRtspServer.RTSPServer()
server.set_address(args.address)
server.set_service(args.port)

if args.auth != "none":
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    # RTSPAuthMethod is an enum in PyGObject: BASIC|DIGEST cannot be combined.
    if args.auth == "basic":
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
    else:
        auth.add_digest(args.user, args.password, token)
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    server.set_auth(auth)

factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f"( {VIDEO} )")
factory.set_shared(False)
if args.auth != "none":
    factory.add_role_from_structure(Gst.Structure.from_string(
        "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0])
server.get_mount_points().add_factory("/test", factory)

rtsp_serve.run(server, lambda port: f"rtsp://{args.address}:{port}/test auth={args.auth}")
