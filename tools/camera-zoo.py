#!/usr/bin/python3
"""Real camera stream shapes for openva's end-to-end tests, served by GStreamer's RTSP server
(Debian packages; not ours) on loopback. Run with Debian's python (/usr/bin/python3).

  /<video>[+<audio>]
    video: h264-baseline   x264, Constrained Baseline, parameter sets in band
           h264-main       x264 Main, no B-frames, parameter sets only in the SDP
           h264-high-b2    x264 High, 2 B-frames
           h264-high-b3    x264 High, 3 B-frames as a pyramid
           h264-slices     x264 High, 4 slices per picture
           h265            x265 Main, no B-frames
           h265-b3         x265 Main, 3 B-frames
           h265-main10     x265 Main 10, 3 B-frames
           h264-resize     x264 High with 2 B-frames whose picture size doubles after 2 s (new
                           SPS and PPS in band, mid-session)
           h264-intra-refresh  x264 with periodic intra refresh: one IDR, then only recovery
                           point SEIs (one a GOP)
           mjpeg           Motion JPEG (a video codec openva does not record)
           relay-h265      with --relay URL: that H.264 camera (openva sim, whose frames carry
                           a machine-readable time stamp) re-encoded to x265 Main with 2
                           B-frames, so an H.265 recording's pictures can be dated
  /audio-only  AAC and no video at all
    audio: aac (MPEG4-GENERIC, 48 kHz) | pcmu | pcma (G.711, 8 kHz) | opus (48 kHz, which
           openva does not record); mono

Every client gets a pipeline of its own (not shared), so its stream starts with a keyframe.
With --frames N a camera captures N video frames (and audio of the same length), then goes
silent, and the mount is gone for later clients (404): a recorder that reconnects after the
silence records nothing more, so what was sent is all there is. What it sends is counted on the wire side of each payloader: when a stream ends the
server prints "SENT <mount> video <frames>" (RTP packets with the marker bit: one per access
unit; the encoders may drop late frames at start-up, so this is what a test compares with) and
"SENT <mount> audio <packets> <payload bytes>".
Prints "READY rtsp://127.0.0.1:PORT/" once listening; exits on SIGINT/SIGTERM.
"""
import argparse

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtp", "1.0")
from gi.repository import GLib, Gst, GstRtp, GstRtspServer  # noqa: E402

import rtsp_serve  # noqa: E402  (tools/, beside this script)

p = argparse.ArgumentParser()
p.add_argument("--port", default="0")
p.add_argument("--fps", type=int, default=25)
p.add_argument("--gop", type=int, default=25)
p.add_argument("--size", default="320x180")
p.add_argument("--frames", type=int, default=-1, help="video frames per stream (-1: endless)")
p.add_argument("--relay", help="an H.264 RTSP camera served again as H.265 at /relay-h265")
a = p.parse_args()
w, h = a.size.split("x")


def raw(fmt="I420"):
    n = f" num-buffers={a.frames}" if a.frames > 0 else ""
    return (f"videotestsrc is-live=true pattern=ball{n} ! "
            f"video/x-raw,format={fmt},width={w},height={h},framerate={a.fps}/1 ! ")


def resizable():
    n = f" num-buffers={a.frames}" if a.frames > 0 else ""
    return (f"videotestsrc is-live=true pattern=ball{n} ! video/x-raw,format=I420,framerate={a.fps}/1 ! "
            f"capsfilter name=size caps=video/x-raw,width={w},height={h} ! ")


x264 = f"x264enc speed-preset=superfast key-int-max={a.gop}"
x265 = f"x265enc speed-preset=superfast key-int-max={a.gop}"
VIDEO = {
    "h264-baseline": raw() + f"{x264} tune=zerolatency ! video/x-h264,profile=constrained-baseline ! "
                             "rtph264pay name=pay0 pt=96 config-interval=-1",
    "h264-main": raw() + f"{x264} bframes=0 ! video/x-h264,profile=main ! rtph264pay name=pay0 pt=96 config-interval=0",
    "h264-high-b2": raw() + f"{x264} bframes=2 ! video/x-h264,profile=high ! rtph264pay name=pay0 pt=96 config-interval=-1",
    "h264-high-b3": raw() + f"{x264} bframes=3 b-pyramid=true ! video/x-h264,profile=high ! "
                            "rtph264pay name=pay0 pt=96 config-interval=-1",
    "h264-slices": raw() + f"{x264} bframes=0 option-string=slices=4 ! video/x-h264,profile=high ! "
                           "rtph264pay name=pay0 pt=96 config-interval=-1",
    "h265": raw() + f"{x265} tune=zerolatency ! rtph265pay name=pay0 pt=96 config-interval=-1",
    "h265-b3": raw() + f"{x265} option-string=bframes=3 ! rtph265pay name=pay0 pt=96 config-interval=-1",
    "h265-main10": raw("I420_10LE") + f"{x265} option-string=bframes=3 ! rtph265pay name=pay0 pt=96 config-interval=-1",
    "h264-intra-refresh": raw() + f"{x264} intra-refresh=true bframes=0 ! video/x-h264,profile=main ! "
                                  "rtph264pay name=pay0 pt=96 config-interval=-1",
    "mjpeg": raw() + "jpegenc ! rtpjpegpay name=pay0 pt=26",
    "h264-resize": resizable() + f"{x264} bframes=2 ! video/x-h264,profile=high ! rtph264pay name=pay0 pt=96 config-interval=-1",
}
if a.relay:
    VIDEO["relay-h265"] = (
        f"rtspsrc location={a.relay} latency=100 protocols=tcp ! rtph264depay ! h264parse ! avdec_h264 ! "
        f"videoconvert ! videorate ! video/x-raw,format=I420,framerate={a.fps}/1 ! "
        f"{x265} bitrate=1500 option-string=bframes=2 ! "
        "rtph265pay name=pay0 pt=96 config-interval=-1")


def audio(kind):
    rate = 48000 if kind in ("aac", "opus") else 8000
    per = rate // a.fps  # one audio buffer per video frame: the same length as the video
    n = f" num-buffers={a.frames}" if a.frames > 0 else ""
    src = (f"audiotestsrc is-live=true wave=sine freq=440 samplesperbuffer={per}{n} ! "
           f"audio/x-raw,rate={rate},channels=1 ! ")
    return src + {
        "aac": "avenc_aac ! rtpmp4gpay name=pay1 pt=97",
        "pcmu": "mulawenc ! rtppcmupay name=pay1 pt=0",
        "pcma": "alawenc ! rtppcmapay name=pay1 pt=8",
        "opus": "opusenc ! rtpopuspay name=pay1 pt=98",
    }[kind]


def count(mount, what, pad):
    n = {"marked": 0, "packets": 0, "bytes": 0}

    def packet(buf):
        ok, rtp = GstRtp.RTPBuffer.map(buf, Gst.MapFlags.READ)
        if ok:
            n["packets"] += 1
            n["bytes"] += rtp.get_payload_len()
            n["marked"] += int(rtp.get_marker())
            rtp.unmap()

    def probe(_pad, info):
        if info.type & Gst.PadProbeType.BUFFER:
            packet(info.get_buffer())
        elif info.type & Gst.PadProbeType.BUFFER_LIST:
            lst = info.get_buffer_list()
            for i in range(lst.length()):
                packet(lst.get(i))
        elif info.type & Gst.PadProbeType.EVENT_DOWNSTREAM and info.get_event().type == Gst.EventType.EOS:
            if what == "video":
                print(f"SENT {mount} video {n['marked']}", flush=True)
                # This camera has finished: nobody gets a second stream from it.
                GLib.idle_add(lambda: mounts.remove_factory(mount) and False)
            else:
                print(f"SENT {mount} audio {n['packets']} {n['bytes']}", flush=True)
        return Gst.PadProbeReturn.OK

    pad.add_probe(Gst.PadProbeType.BUFFER | Gst.PadProbeType.BUFFER_LIST | Gst.PadProbeType.EVENT_DOWNSTREAM, probe)


def configure(mount):
    def on_configure(_factory, media):
        bin_ = media.get_element()
        size = bin_.get_by_name("size")
        if size is not None:
            def grow():
                size.set_property("caps", Gst.Caps.from_string(f"video/x-raw,width={2 * int(w)},height={2 * int(h)}"))
                return False
            GLib.timeout_add(2000, grow)
        for name, what in (("pay0", "video"), ("pay1", "audio")):
            el = bin_.get_by_name(name)
            if el is not None:
                count(mount, what, el.get_static_pad("src"))
    return on_configure


Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(a.port)
mounts = server.get_mount_points()
for v, launch in VIDEO.items():
    for au in ("", "aac", "pcmu", "pcma", "opus"):
        mount = f"/{v}" + (f"+{au}" if au else "")
        f = GstRtspServer.RTSPMediaFactory()
        f.set_launch("( " + launch + (" " + audio(au) if au else "") + " )")
        f.set_shared(False)
        f.connect("media-configure", configure(mount))
        mounts.add_factory(mount, f)
only = GstRtspServer.RTSPMediaFactory()
only.set_launch("( " + audio("aac").replace("name=pay1", "name=pay0") + " )")
only.set_shared(False)
mounts.add_factory("/audio-only", only)
rtsp_serve.run(server, lambda port: f"rtsp://127.0.0.1:{port}/")
