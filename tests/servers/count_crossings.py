"""Counts line crossings with an independent implementation: Roboflow's `supervision`
(PyPI), its LineZone with the bottom-centre anchor, fed one frame of tracked boxes at a time.

Reads JSON lines from standard input: {"width": W, "height": H, "line": [[x1,y1],[x2,y2]],
"frames": [[{"id": "...", "box": {"l","t","w","h"}}, ...], ...]} (fractions of the frame).
Prints {"in": N, "out": M}: supervision's counts (its `in` is AVA's counterclockwise).
"""
import json, sys

import numpy as np
import supervision as sv

job = json.load(sys.stdin)
w, h = job["width"], job["height"]
(x1, y1), (x2, y2) = job["line"]
zone = sv.LineZone(start=sv.Point(x1 * w, y1 * h), end=sv.Point(x2 * w, y2 * h),
                   triggering_anchors=[sv.Position.BOTTOM_CENTER])
ids = {}
for frame in job["frames"]:
    if not frame:
        zone.trigger(sv.Detections.empty())
        continue
    xyxy = np.array([[b["box"]["l"] * w, b["box"]["t"] * h, (b["box"]["l"] + b["box"]["w"]) * w,
                      (b["box"]["t"] + b["box"]["h"]) * h] for b in frame], dtype=float)
    tracker_id = np.array([ids.setdefault(b["id"], len(ids) + 1) for b in frame])
    zone.trigger(sv.Detections(xyxy=xyxy, tracker_id=tracker_id))
print(json.dumps({"in": int(zone.in_count), "out": int(zone.out_count)}))
