"""An inference server on AVA's gRPC extension contract, for openva's tests.

The servicer is this team's, written from the contract (research/extensions.md §2.4-§2.5) and
mirroring what Microsoft's servers were seen to do: it answers the media stream descriptor with
its own ({seq 1, ack 1, media_descriptor{timescale}}), then each sample with one message that
acknowledges it and echoes its timestamp, with ArUco markers (OpenCV, DICT_4X4_50) as `ENTITY`
inferences. It reads frames embedded or from the shared memory file the descriptor names, checks
`x-ms-authentication` when --basic is given, and logs every message as a JSON line (sequence and
acknowledgement numbers, content sizes, upstream inferences, the descriptor) for tests to read.
Stubs are compiled at start from openva's copy of the contract (host/proto) by grpcio-tools.

usage: aruco_grpc.py [--port PORT] --log FILE [--basic USER:PASSWORD] [--size WxH] [--classify]
                     [--tls CERT KEY] [--parallel N --delay MS] [--silent]
--silent: answer the descriptor, never a sample (a server that hangs).
--tls: serve over TLS with this certificate chain and key (PEM).
--parallel N --delay MS: work on up to N samples at once, each taking MS more milliseconds, and
  answer each when done (the contract encourages servers to work "asynchronously and possibly in
  parallel"); a sample's bytes are read from shared memory only after the delay, so a sender
  that reused a region before its acknowledgement would corrupt the image. Logs how many samples
  were out (received, not yet answered) when each arrived.
--size: refuse frames of any other size with INVALID_ARGUMENT (Microsoft's YOLOv3 server does).
--classify: the second stage of a chain (AVA's ai-composition): instead of detecting, answer each
  upstream ENTITY the sample carries with a CLASSIFICATION "seen:<its tag>" (subtype "chained"),
  so a test can tell the upstream inferences arrived with the frame.
Prints `READY tcp://127.0.0.1:PORT` when listening.
"""
import argparse, base64, json, os, queue, sys, tempfile, threading, time
from concurrent import futures

import cv2
import grpc
import numpy as np
from grpc_tools import protoc

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=0)
p.add_argument("--log", required=True)
p.add_argument("--basic")
p.add_argument("--size")
p.add_argument("--classify", action="store_true")
p.add_argument("--tls", nargs=2)
p.add_argument("--parallel", type=int, default=0)
p.add_argument("--silent", action="store_true")
p.add_argument("--delay", type=float, default=0)
a = p.parse_args()

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "..", "host", "proto")
OUT = tempfile.mkdtemp(prefix="ava-stubs-")
if protoc.main(["protoc", f"-I{PROTO}", f"--python_out={OUT}", f"--grpc_python_out={OUT}",
                "extension.proto", "inferencing.proto", "media.proto"]) != 0:
    sys.exit("cannot compile the contract")
sys.path.insert(0, OUT)
import extension_pb2 as ext  # noqa: E402
import extension_pb2_grpc as ext_grpc  # noqa: E402
import inferencing_pb2 as inf  # noqa: E402
import media_pb2 as media  # noqa: E402

DETECTOR = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50),
                                   cv2.aruco.DetectorParameters())
LOCK = threading.Lock()


def log(entry):
    with LOCK, open(a.log, "a") as f:
        f.write(json.dumps(entry) + "\n")


def detect(img):
    h, w = img.shape[:2]
    corners, ids, _ = DETECTOR.detectMarkers(img)
    found = []
    for c, i in zip(corners, [] if ids is None else ids.flatten()):
        xs, ys = c[0][:, 0], c[0][:, 1]
        box = inf.Rectangle(l=float(xs.min()) / w, t=float(ys.min()) / h,
                            w=float(xs.max() - xs.min()) / w, h=float(ys.max() - ys.min()) / h)
        found.append(inf.Inference(type=inf.Inference.ENTITY, subtype="objectDetection",
                                   entity=inf.Entity(tag=inf.Tag(value=f"marker-{int(i)}", confidence=1.0), box=box)))
    return found


def parallel_stream(requests):
    """--parallel: a reader thread takes messages as they come, a pool works on samples, and
    answers go out as they are done (each acknowledging its sample's own sequence number)."""
    out = queue.Queue()
    pool = futures.ThreadPoolExecutor(max_workers=a.parallel)
    st = {"fmt": None, "shm": None, "out": 0}
    lock = threading.Lock()

    def work(msg):
        time.sleep(a.delay / 1000)
        sample = msg.media_sample
        if sample.HasField("content_reference"):
            ref = sample.content_reference
            data = os.pread(st["shm"].fileno(), ref.length_bytes, ref.address_offset)
        else:
            data = sample.content_bytes.bytes
        img = decode(data, st["fmt"])
        found = [] if img is None else detect(img)
        with lock:
            st["out"] -= 1
        log({"t": time.time(), "event": "answer", "ack": msg.sequence_number, "found": len(found)})
        out.put((msg.sequence_number, ext.MediaSample(timestamp=sample.timestamp, inferences=found)))

    def reader():
        try:
            read(requests)
        except grpc.RpcError:
            pass  # the client went away
        out.put(None)

    def read(requests):
        for msg in requests:
            entry = {"t": time.time(), "seq": msg.sequence_number, "ack": msg.ack_sequence_number}
            if msg.HasField("media_stream_descriptor"):
                d = msg.media_stream_descriptor
                st["fmt"] = d.media_descriptor.video_frame_sample_format
                if d.HasField("shared_memory_buffer_transfer_properties"):
                    props = d.shared_memory_buffer_transfer_properties
                    st["shm"] = open(os.path.join("/dev/shm", props.handle_name), "rb")
                    entry.update(shm=props.handle_name, shmBytes=props.length_bytes)
                log(dict(entry, event="descriptor", pipeline=d.graph_identifier.graph_instance_name))
                out.put((msg.sequence_number, None))
                continue
            with lock:
                st["out"] += 1
                entry["outstanding"] = st["out"]
            ref = msg.media_sample.content_reference if msg.media_sample.HasField("content_reference") else None
            entry.update(event="sample", timestamp=msg.media_sample.timestamp,
                         offset=None if ref is None else ref.address_offset,
                         bytes=None if ref is None else ref.length_bytes)
            log(entry)
            pool.submit(work, msg)

    threading.Thread(target=reader, daemon=True).start()
    seq = 0
    while True:
        item = out.get()
        if item is None:
            return
        ack, sample = item
        seq += 1
        if sample is None:
            yield ext.MediaStreamMessage(sequence_number=seq, ack_sequence_number=ack,
                                         media_stream_descriptor=ext.MediaStreamDescriptor(
                                             media_descriptor=media.MediaDescriptor(timescale=90000)))
        else:
            yield ext.MediaStreamMessage(sequence_number=seq, ack_sequence_number=ack, media_sample=sample)


def decode(data, fmt):
    if fmt.encoding == media.VideoFrameSampleFormat.RAW:
        w, h, stride = fmt.dimensions.width, fmt.dimensions.height, fmt.stride_bytes
        if fmt.pixel_format != media.VideoFrameSampleFormat.BGR24:
            raise ValueError("this server takes RAW frames as BGR24")
        return np.frombuffer(data, np.uint8, stride * h).reshape(h, stride)[:, : w * 3].reshape(h, w, 3)
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


class Servicer(ext_grpc.MediaGraphExtensionServicer):
    def ProcessMediaStream(self, requests, context):
        meta = dict(context.invocation_metadata())
        if a.basic and meta.get("x-ms-authentication") != "Basic " + base64.b64encode(a.basic.encode()).decode():
            log({"event": "refused", "auth": meta.get("x-ms-authentication")})
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad credentials")
        if a.parallel:
            yield from parallel_stream(requests)
            return
        seq, fmt, shm = 0, None, None
        for msg in requests:
            entry = {"t": time.time(), "seq": msg.sequence_number, "ack": msg.ack_sequence_number}
            if msg.HasField("media_stream_descriptor"):
                d = msg.media_stream_descriptor
                fmt = d.media_descriptor.video_frame_sample_format
                entry.update(event="descriptor", pipeline=d.graph_identifier.graph_instance_name,
                             node=d.graph_identifier.graph_node_name, configuration=d.extension_configuration,
                             encoding=fmt.encoding, pixelFormat=fmt.pixel_format, width=fmt.dimensions.width,
                             height=fmt.dimensions.height, stride=fmt.stride_bytes, timescale=d.media_descriptor.timescale)
                if d.HasField("shared_memory_buffer_transfer_properties"):
                    props = d.shared_memory_buffer_transfer_properties
                    shm = open(os.path.join("/dev/shm", props.handle_name), "r+b")
                    entry.update(shm=props.handle_name, shmBytes=props.length_bytes)
                log(entry)
                seq += 1
                yield ext.MediaStreamMessage(
                    sequence_number=seq, ack_sequence_number=msg.sequence_number,
                    media_stream_descriptor=ext.MediaStreamDescriptor(
                        media_descriptor=media.MediaDescriptor(timescale=90000)))
                continue
            t0 = time.time()
            if a.silent:
                log(dict(entry, event="sample", silent=True))
                continue
            sample = msg.media_sample
            if sample.HasField("content_reference"):
                ref = sample.content_reference
                # Unbuffered: a buffered file reads ahead, and a later frame's bytes would come
                # from that stale read-ahead rather than from the memory.
                data = os.pread(shm.fileno(), ref.length_bytes, ref.address_offset)
                entry.update(transfer="shm", offset=ref.address_offset)
            else:
                data = sample.content_bytes.bytes
                entry["transfer"] = "embedded"
            img = decode(data, fmt)
            h, w = img.shape[:2]
            entry.update(event="sample", timestamp=sample.timestamp, bytes=len(data), width=w, height=h,
                         upstream=len(sample.inferences),
                         upstreamTags=[i.entity.tag.value for i in sample.inferences if i.HasField("entity")])
            if a.size and f"{w}x{h}" != a.size:
                log(dict(entry, status="INVALID_ARGUMENT"))
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Received an image of size ({w}, {h}), but expected {a.size}")
            found = []
            if a.classify:
                for up in sample.inferences:
                    if up.HasField("entity"):
                        found.append(inf.Inference(type=inf.Inference.CLASSIFICATION, subtype="chained",
                                                   classification=inf.Classification(
                                                       tag=inf.Tag(value="seen:" + up.entity.tag.value, confidence=1.0))))
                entry["found"] = len(found)
                entry["ms"] = (time.time() - t0) * 1000
                log(entry)
                seq += 1
                yield ext.MediaStreamMessage(sequence_number=seq, ack_sequence_number=msg.sequence_number,
                                             media_sample=ext.MediaSample(timestamp=sample.timestamp, inferences=found))
                continue
            found = detect(img)
            entry["found"] = len(found)
            entry["ms"] = (time.time() - t0) * 1000  # the server's own time: reading, decoding, detecting
            log(entry)
            seq += 1
            yield ext.MediaStreamMessage(sequence_number=seq, ack_sequence_number=msg.sequence_number,
                                         media_sample=ext.MediaSample(timestamp=sample.timestamp, inferences=found))


server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
ext_grpc.add_MediaGraphExtensionServicer_to_server(Servicer(), server)
if a.tls:
    with open(a.tls[0], "rb") as c, open(a.tls[1], "rb") as k:
        creds = grpc.ssl_server_credentials([(k.read(), c.read())])
    port = server.add_secure_port(f"127.0.0.1:{a.port}", creds)
else:
    port = server.add_insecure_port(f"127.0.0.1:{a.port}")
server.start()
print(f"READY tcp://127.0.0.1:{port}", flush=True)
server.wait_for_termination()
