"""What every RTSP test server of tools/ shares: attach GStreamer's RTSP server, stop on
SIGINT/SIGTERM, and print the READY line the end-to-end tests wait for."""
import signal
import sys

from gi.repository import GLib


def run(server, ready):
    """Attaches `server` and runs until a signal; `ready(port)` is the READY line's text."""
    if server.attach(None) == 0:
        print("failed to bind", file=sys.stderr)
        sys.exit(1)
    loop = GLib.MainLoop()
    for s in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, s, loop.quit)
    print(f"READY {ready(server.get_bound_port())}", flush=True)
    loop.run()
