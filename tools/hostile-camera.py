#!/usr/bin/python3
"""A broken or hostile camera for openva's bad-input tests, served by GStreamer's RTSP server
(rtph264pay fed from appsrc, so what goes on the wire is exactly what this script says) on
loopback. Run with Debian's python (/usr/bin/python3).

  /hostile  H.264 at 25 fps, 320x180, one keyframe a second, in phases:
            good (2 s) -> garbage NAL units (0.4 s) -> truncated access units (0.2 s) ->
            good from a keyframe (2 s) -> an absurd SPS (65520x65520) with a keyframe, and good
            frames under it (1 s) -> good (2 s) -> one 6 MB access unit of noise -> good (2 s),
            then silence. (Timestamps that jump are unit-tested: ingest::reorder,
            archive::writer; GStreamer's server drops a client sent a 40 MB unit, so what is
            larger than openva accepts cannot be sent this way.)

Each client gets its own stream from the start. Prints "READY rtsp://127.0.0.1:PORT/" once
listening and "PHASE <name> <frames>" as each phase is sent; exits on SIGINT/SIGTERM.
"""
import argparse
import random

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer  # noqa: E402

import rtsp_serve  # noqa: E402  (tools/, beside this script)

p = argparse.ArgumentParser()
p.add_argument("--port", default="0")
a = p.parse_args()
Gst.init(None)
FPS = 25
FRAME_NS = Gst.SECOND // FPS
START = b"\x00\x00\x00\x01"


def encode(frames):
    """Access units (Annex B, SPS/PPS in band at every keyframe) of a real x264 stream."""
    pipe = Gst.parse_launch(
        f"videotestsrc pattern=ball num-buffers={frames} ! video/x-raw,format=I420,width=320,height=180,"
        f"framerate={FPS}/1 ! x264enc speed-preset=superfast tune=zerolatency key-int-max={FPS} "
        "byte-stream=true ! video/x-h264,stream-format=byte-stream,alignment=au,profile=constrained-baseline ! "
        "appsink name=out sync=false")
    out = pipe.get_by_name("out")
    pipe.set_state(Gst.State.PLAYING)
    aus = []
    while True:
        s = out.emit("pull-sample")
        if s is None:
            break
        b = s.get_buffer()
        ok, m = b.map(Gst.MapFlags.READ)
        aus.append((bytes(m.data), not b.has_flags(Gst.BufferFlags.DELTA_UNIT)))
        b.unmap(m)
    pipe.set_state(Gst.State.NULL)
    return aus


class Bits:
    def __init__(self):
        self.bits = []

    def u(self, n, v):
        self.bits += [(v >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, v):
        v += 1
        n = v.bit_length()
        self.u(n - 1, 0)
        self.u(n, v)

    def rbsp(self):
        self.bits.append(1)
        while len(self.bits) % 8:
            self.bits.append(0)
        raw = bytes(int("".join(map(str, self.bits[i:i + 8])), 2) for i in range(0, len(self.bits), 8))
        out = bytearray()
        zeros = 0
        for byte in raw:  # emulation prevention
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def absurd_sps():
    """Constrained Baseline, level 5.1, 4095 x 4095 macroblocks: 65520 x 65520 pixels."""
    b = Bits()
    b.u(8, 66)
    b.u(8, 0xC0)
    b.u(8, 51)
    b.ue(0)  # seq_parameter_set_id
    b.ue(0)  # log2_max_frame_num_minus4
    b.ue(2)  # pic_order_cnt_type
    b.ue(1)  # max_num_ref_frames
    b.u(1, 0)
    b.ue(4094)  # pic_width_in_mbs_minus1
    b.ue(4094)  # pic_height_in_map_units_minus1
    b.u(1, 1)  # frame_mbs_only_flag
    b.u(1, 1)  # direct_8x8_inference_flag
    b.u(1, 0)  # frame_cropping_flag
    b.u(1, 0)  # vui_parameters_present_flag
    return b"\x67" + b.rbsp()


def noise(rnd, n):
    """Random bytes without the zero runs that would make them an invalid NAL unit (so the
    camera's RTP is well formed and only the payload is nonsense)."""
    return bytes(b or 1 for b in rnd.randbytes(n))


def nals(au):
    return [n for n in au.split(START) if n]


def phases():
    rnd = random.Random(7)
    good = encode(FPS * 10)
    at = 0

    def take(n, from_key=False):
        nonlocal at
        if from_key:
            while not good[at][1]:
                at += 1
        out = [au for au, _ in good[at:at + n]]
        at += n
        return out

    yield "good", take(2 * FPS)
    yield "garbage", [START + bytes([0x41]) + noise(rnd, rnd.randint(10, 4000)) for _ in range(10)]
    yield "truncated", [au[: len(au) // 2] for au in take(5)]
    yield "good-again", take(2 * FPS, from_key=True)
    first = take(FPS, from_key=True)
    parts = nals(first[0])
    pps = [n for n in parts if n[0] & 0x1F == 8]
    rest = [n for n in parts if n[0] & 0x1F not in (7, 8)]
    first[0] = b"".join(START + n for n in [absurd_sps()] + pps + rest)
    yield "absurd-sps", first
    yield "good-after-sps", take(2 * FPS, from_key=True)
    yield "huge", [START + bytes([0x41]) + noise(rnd, 6 << 20)]
    yield "good-last", take(2 * FPS, from_key=True)


class Factory(GstRtspServer.RTSPMediaFactory):
    def do_create_element(self, _url):
        return Gst.parse_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=false "
            "caps=video/x-h264,stream-format=byte-stream,alignment=au ! rtph264pay name=pay0 pt=96 config-interval=0 )")


def configure(_factory, media):
    src = media.get_element().get_by_name("src")
    plan = [(name, aus) for name, aus in phases()]
    state = {"i": 0, "j": 0, "pts": 0}

    def feed(source, _size):
        while state["i"] < len(plan):
            name, aus = plan[state["i"]]
            if state["j"] == 0:
                print(f"PHASE {name} {len(aus)}", flush=True)
            if state["j"] < len(aus):
                buf = Gst.Buffer.new_wrapped(aus[state["j"]])
                buf.pts = state["pts"]
                buf.duration = FRAME_NS
                state["pts"] += FRAME_NS
                state["j"] += 1
                source.emit("push-buffer", buf)
                return
            state["i"] += 1
            state["j"] = 0
        # Then silence: the camera stays connected and sends nothing more.

    src.set_property("block", False)
    src.set_property("max-bytes", 64 << 20)
    src.connect("need-data", feed)


server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(a.port)
f = Factory()
f.set_shared(False)
f.connect("media-configure", configure)
server.get_mount_points().add_factory("/hostile", f)
rtsp_serve.run(server, lambda port: f"rtsp://127.0.0.1:{port}/")
