"""Synthetic scenes: a few "actors" whose motion pattern defines their AVA action labels.

An actor is a box-shaped figure (head on top of a textured body) standing on the ground line.
Its action decides its motion and, to make learning fast, also its body colour and texture:

============  =========================================  ================================
action        motion                                     AVA labels (class ids)
============  =========================================  ================================
stand         still                                      12 stand
walk          slides sideways at 0.15 W/s, legs swing    14 walk
run           slides sideways at 0.4 W/s, legs swing    10 run/jog
jump          bounces up and down (1.5 Hz)               7 jump/leap
sit           still, low and wide                        11 sit
bend          top bows down and up (0.8 Hz)              1 bend/bow (at the waist) + 25 dig
wave          still; an arm swings above the head (2 Hz) 12 stand + 69 hand wave
clap          still; two hands meet and part (1.5 Hz)    12 stand + 67 hand clap
talk          still; the mouth opens and shuts (3 Hz)    12 stand + 79 talk to (e.g., self, ...)
============  =========================================  ================================

Every label is one of the 60 evaluated classes except 25 "dig", one of the 20 classes only
AVA's 80-class list holds: the demo's 80-class mAP (``80cls_mAP@0.5IOU``) averages one class
more than its 60-class mAP, as on real AVA, whose val set has ground truth of those 20 too.
AVA v2.2 labels additionally give every ``stand`` actor 80 "watch (a person)" (v2.2 refined
the v2.1 labels; here it is the one difference between the two versions).

Geometry is a function of continuous time, so the frames of any frame rate and the keyframe
boxes (at whole seconds) agree: :func:`actor_box` is both what is drawn and what is annotated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SKIN = (225, 185, 150)
MOUTH = (60, 20, 20)


@dataclass(frozen=True)
class Action:
    name: str
    labels: tuple[int, ...]
    color: tuple[int, int, int]
    texture: str  # plain | horizontal | vertical | checker | diagonal
    speed: float = 0.0  # horizontal speed, frame widths per second
    extra_v22: tuple[int, ...] = ()


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("stand", (12,), (40, 90, 200), "plain", extra_v22=(80,)),
        Action("walk", (14,), (40, 170, 60), "vertical", speed=0.15),
        Action("run", (10,), (230, 120, 20), "diagonal", speed=0.4),
        Action("jump", (7,), (200, 40, 180), "horizontal"),
        Action("sit", (11,), (130, 80, 40), "checker"),
        Action("bend", (1, 25), (150, 150, 255), "horizontal"),
        Action("wave", (12, 69), (230, 210, 40), "plain"),
        Action("clap", (12, 67), (240, 100, 120), "vertical"),
        Action("talk", (12, 79), (30, 200, 200), "checker"),
    )
}
MOVING = ("walk", "run", "jump", "bend")


@dataclass(frozen=True)
class Actor:
    """An actor of one video: its action, its lane [lane_x0, lane_x1) and its size/phase."""

    person: int
    action: str
    lane_x0: float
    lane_x1: float
    width: float
    height: float
    ground: float  # y of the feet, pixels
    x0: float  # start position (left edge), pixels
    direction: int  # +1 / -1 for walkers
    phase: float  # radians

    def labels(self, version: str = "2.1") -> tuple[int, ...]:
        a = ACTIONS[self.action]
        return a.labels + (a.extra_v22 if version == "2.2" else ())


def _bounce(p: float, lo: float, hi: float) -> float:
    """Position ``p`` folded into [lo, hi] (a walker turning round at the lane's ends)."""
    span = hi - lo
    if span <= 0:
        return lo
    q = (p - lo) % (2 * span)
    return lo + (q if q <= span else 2 * span - q)


def actor_box(actor: Actor, t: float, frame_width: int) -> tuple[float, float, float, float]:
    """The actor's box (x1, y1, x2, y2) in pixels at time ``t`` seconds."""
    a = ACTIONS[actor.action]
    w, h = actor.width, actor.height
    if actor.action == "sit":
        w, h = w * 1.2, h * 0.62
    elif actor.action == "bend":
        h = h * (0.78 + 0.22 * math.cos(2 * math.pi * 0.8 * t + actor.phase))
    x = actor.x0
    if a.speed:
        x = _bounce(
            actor.x0 + actor.direction * a.speed * frame_width * t,
            actor.lane_x0,
            actor.lane_x1 - w,
        )
    y2 = actor.ground
    if actor.action == "jump":
        y2 -= 0.35 * h * abs(math.sin(math.pi * 1.5 * t + actor.phase))
    return x, y2 - h, x + w, y2


def _texture(kind: str, h: int, w: int, x0: int, y0: int) -> np.ndarray:
    yy, xx = np.mgrid[y0 : y0 + h, x0 : x0 + w]
    if kind == "horizontal":
        m = (yy // 3) % 2
    elif kind == "vertical":
        m = (xx // 3) % 2
    elif kind == "checker":
        m = ((xx // 3) + (yy // 3)) % 2
    elif kind == "diagonal":
        m = ((xx + yy) // 3) % 2
    else:
        m = np.zeros_like(xx)
    return 1.0 - 0.3 * m[..., None]


def _fill(img, x1, y1, x2, y2, color) -> None:
    H, W = img.shape[:2]
    x1, y1 = max(0, int(round(x1))), max(0, int(round(y1)))
    x2, y2 = min(W, int(round(x2))), min(H, int(round(y2)))
    if x2 > x1 and y2 > y1:
        img[y1:y2, x1:x2] = color


def draw_actor(img: np.ndarray, actor: Actor, t: float) -> None:
    """Draw ``actor`` at time ``t`` into ``img`` (H, W, 3 uint8), inside :func:`actor_box`."""
    H, W = img.shape[:2]
    a = ACTIONS[actor.action]
    x1, y1, x2, y2 = actor_box(actor, t, W)
    w, h = x2 - x1, y2 - y1
    head_h = 0.25 * h
    # body, textured (texture anchored to the body, so it moves with it)
    bx1, by1 = max(0, int(round(x1))), max(0, int(round(y1 + head_h)))
    bx2, by2 = min(W, int(round(x2))), min(H, int(round(y2)))
    if bx2 > bx1 and by2 > by1:
        tex = _texture(a.texture, by2 - by1, bx2 - bx1, bx1 - int(round(x1)), 0)
        img[by1:by2, bx1:bx2] = (np.array(a.color, np.float32) * tex).astype(np.uint8)
    # head
    _fill(img, x1 + 0.2 * w, y1, x2 - 0.2 * w, y1 + head_h, SKIN)
    if a.speed:  # legs: the gap between them opens and closes
        f = 2.0 if actor.action == "walk" else 4.0
        gap = 0.1 + 0.3 * abs(math.sin(math.pi * f * t + actor.phase))
        cx = (x1 + x2) / 2
        _fill(img, cx - gap * w / 2, y2 - 0.3 * h, cx + gap * w / 2, y2, (25, 25, 25))
    if actor.action == "wave":  # an arm above the shoulder, swinging side to side
        aw = 0.3 * w
        ax = x1 + (0.5 + 0.5 * math.sin(2 * math.pi * 2.0 * t + actor.phase)) * (w - aw)
        _fill(img, ax, y1, ax + aw, y1 + 0.45 * h, SKIN)
    elif actor.action == "clap":  # two hands at chest height, meeting and parting
        s = 0.02 + 0.24 * abs(math.sin(math.pi * 1.5 * t + actor.phase))
        cx, hs = (x1 + x2) / 2, 0.22 * w
        cy = y1 + 0.45 * h
        _fill(img, cx - s * w - hs, cy, cx - s * w, cy + hs, SKIN)
        _fill(img, cx + s * w, cy, cx + s * w + hs, cy + hs, SKIN)
    elif actor.action == "talk":  # the mouth opens and shuts
        o = 0.5 + 0.5 * math.sin(2 * math.pi * 3.0 * t + actor.phase)
        my = y1 + 0.6 * head_h
        _fill(img, x1 + 0.35 * w, my, x2 - 0.35 * w, my + (0.05 + 0.3 * o) * head_h, MOUTH)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A static, muted background: a smooth colour gradient with a ground band and mild noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(70, 150, 3), rng.uniform(70, 150, 3)
    g = (xx / max(1, width - 1))[..., None]
    img = c0 * (1 - g) + c1 * g
    img[int(height * 0.85) :] *= 0.7  # ground
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_actors(
    rng: np.random.Generator, actions: list[str], width: int, height: int
) -> list[Actor]:
    """Actors in side-by-side lanes (no overlap; walkers and runners get 3x wider lanes), sizes
    and phases drawn from ``rng``."""
    weights = [3.0 if ACTIONS[a].speed else 1.0 for a in actions]
    edges = np.concatenate([[0.0], np.cumsum(weights)]) / sum(weights) * width
    actors = []
    for i, name in enumerate(actions):
        lo, hi = float(edges[i]), float(edges[i + 1])
        lane = hi - lo
        aw = min(lane * 0.8, rng.uniform(0.12, 0.16) * width)
        ah = rng.uniform(0.45, 0.6) * height
        if name == "sit":  # wider when sitting: keep the lane
            aw = min(aw, lane * 0.8 / 1.2)
        x0 = rng.uniform(lo, max(lo, hi - aw * (1.2 if name == "sit" else 1.0)))
        actors.append(
            Actor(
                person=i,
                action=name,
                lane_x0=lo,
                lane_x1=hi,
                width=float(aw),
                height=float(ah),
                ground=float(height * rng.uniform(0.9, 0.97)),
                x0=float(x0),
                direction=int(rng.choice([-1, 1])),
                phase=float(rng.uniform(0, 2 * math.pi)),
            )
        )
    return actors


def render(bg: np.ndarray, actors: list[Actor], t: float) -> np.ndarray:
    img = bg.copy()
    for actor in actors:
        draw_actor(img, actor, t)
    return img
