"""Built-in procedural street scenes in the Cityscapes label space, so tfsynth runs offline.

The quickstart trains a CRN (label map -> photo) on these scenes on a small CPU, so the mapping
must be learnable, one-to-many, and the photos must read as streets. Pure numpy + Pillow.

Construction: a pinhole camera 1.5 m above flat ground looks down a street. Everything is placed
in metres and projected, so sizes shrink toward the horizon and converge to one vanishing point:
road (lane markings, zebra crossings), sidewalks (curbs, tiles), building facades (vertical planes
with window grids and shop fronts) or a park (grass, hedges, fence or wall), a block closing the
street, then objects painted far to near (cars, buses, trucks, pedestrians, trees, poles with
signs and traffic lights, bins) and the ego-vehicle hood, as in Cityscapes.

Learnable: each class has its own colour distribution and texture (asphalt grain, tile joints,
foliage noise, smooth sky, window grids aligned with the facade), tied to geometry that the label
map shows. One-to-many: what a label map cannot tell is random per scene -- time of day (day,
overcast, evening, dusk with lit windows: sky, global colour transform, haze), facade, car and
clothing colours, window layouts, cast shadows.

Deterministic: the layout comes from ``np.random.default_rng([seed, index])`` and never depends on
the image size (a scene looks the same at every resolution); pixel noise uses ``[seed, index, 1]``.
"""

from __future__ import annotations

import dataclasses
import os
import types
from typing import Iterator

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CITYSCAPES_LABELS
from PIL import Image

from tfsynth.data import labels as label_spaces

# Official labelIds by name ("traffic light" -> L.traffic_light); never retyped.
L = types.SimpleNamespace(**{x.name.replace(" ", "_"): x.id for x in _CITYSCAPES_LABELS})

_F = np.float32  # full-image arithmetic stays in float32: float64 doubles the time
_CAM_HEIGHT = 1.5  # metres; sets the scale of the whole world
_GLASS = np.array([48, 58, 72], np.float32)
_WARM = np.array([255, 205, 130], np.float32)
_FACADES = np.array([[196, 182, 152], [168, 160, 150], [150, 88, 68], [214, 204, 184],
                     [122, 117, 112], [220, 208, 165], [176, 122, 92], [200, 200, 206],
                     [108, 100, 92], [232, 228, 220]], np.float32)
_CARS = np.array([[232, 232, 232], [26, 26, 30], [172, 176, 182], [105, 108, 112], [30, 44, 96],
                  [158, 24, 24], [40, 82, 165], [40, 78, 50], [190, 174, 140]], np.float32)
_CLOTHES = np.array([[30, 30, 35], [60, 60, 70], [40, 55, 100], [150, 30, 40], [200, 200, 195],
                     [120, 90, 60], [70, 100, 60], [210, 170, 50], [100, 60, 120]], np.float32)
# name, probability, sky top, sky horizon, channel gains, saturation, haze metres, lit windows
_LIGHTING = (("day", .40, (62, 118, 200), (178, 205, 232), (1.0, 1.0, 1.0), 1.0, 450, .02),
             ("overcast", .25, (150, 156, 166), (206, 209, 213), (.82, .84, .88), .55, 180, .08),
             ("evening", .15, (86, 116, 188), (246, 192, 138), (1.04, .93, .8), .95, 320, .15),
             ("dusk", .20, (28, 36, 80), (222, 122, 78), (.42, .38, .46), .75, 260, .55))
# Per-class multiplicative noise: (fine grain, low-frequency blotches).
_NOISE = {"road": (.06, .05), "sidewalk": (.05, .07), "building": (.04, .06), "wall": (.05, .08),
          "fence": (.05, .05), "pole": (.04, .03), "vegetation": (.22, .25), "terrain": (.15, .22),
          "person": (.05, 0), "car": (.025, .02), "truck": (.03, .02), "bus": (.03, .02),
          "static": (.06, .03), "ego_vehicle": (.02, .04), "traffic_sign": (.03, 0),
          "traffic_light": (.03, 0)}
_FINE, _LOW = np.zeros((2, 256), np.float32)
for _name, (_fine, _low) in _NOISE.items():
    _FINE[getattr(L, _name)], _LOW[getattr(L, _name)] = _fine, _low


@dataclasses.dataclass(frozen=True)
class Scene:
    """One rendered scene.

    Attributes:
      image: uint8 [H, W, 3] photo.
      label: uint8 [H, W] Cityscapes labelIds.
      instance: int32 [H, W] Cityscapes instanceIds (labelId * 1000 + k for things).
      key: unique name, e.g. ``"synthetic_s0_000007"``.
    """

    image: np.ndarray
    label: np.ndarray
    instance: np.ndarray
    key: str


class _Canvas:
    """Image, label, instance and depth buffers plus the camera that projects onto them."""

    def __init__(self, height, width, focal, horizon, vanish_x):
        self.h, self.w, self.f, self.yh, self.xv = height, width, focal, horizon, vanish_x
        self.img = np.zeros((height, width, 3), np.float32)
        self.label = np.zeros((height, width), np.uint8)
        self.inst = np.zeros((height, width), np.int32)
        self.depth = np.zeros((height, width), np.float32)
        self.glow = np.zeros((height, width), bool)  # emissive pixels: no lighting transform
        self.counts = {}

    def new_instance(self, cls):
        self.counts[cls] = self.counts.get(cls, -1) + 1
        return cls * 1000 + self.counts[cls]

    def paint(self, win, mask, cls, color, depth, inst=None, glow=False):
        mask = np.broadcast_to(mask, self.label[win].shape)  # copyto(where=) beats mask indexing
        np.copyto(self.img[win], np.asarray(color, np.float32), where=mask[..., None],
                  casting="unsafe")
        np.copyto(self.label[win], cls, where=mask, casting="unsafe")
        np.copyto(self.inst[win], cls if inst is None else inst, where=mask, casting="unsafe")
        np.copyto(self.depth[win], depth, where=mask, casting="unsafe")
        np.copyto(self.glow[win], glow, where=mask)

    def _rows(self, r0, r1, z):  # world height at each row centre, for depth z
        rows = np.arange(r0, r1, dtype=np.float32)[:, None] + .5
        return _CAM_HEIGHT - (rows - self.yh) * z / self.f

    @staticmethod
    def _span(a, b, size, min_px=False):
        lo, hi = int(np.ceil(a - .5)), int(np.ceil(b - .5))  # pixels whose centre is inside
        if min_px and hi <= lo:  # thin far poles must not vanish
            lo = int(np.floor((a + b) / 2))
            hi = lo + 1
        return max(lo, 0), min(hi, size)

    def rect(self, x0, x1, z, h0, h1, min_px=False):
        """Front-facing rectangle at depth z: (window, world x (1,n), world height (m,1))."""
        x0, x1, z, h0, h1 = map(float, (x0, x1, z, h0, h1))  # numpy float64 would upcast
        c0, c1 = self._span(self.xv + self.f * x0 / z, self.xv + self.f * x1 / z, self.w, min_px)
        y0, y1 = (self.yh + self.f * (_CAM_HEIGHT - hh) / z for hh in (h1, h0))
        r0, r1 = self._span(y0, y1, self.h, min_px)
        if c1 <= c0 or r1 <= r0:
            return None
        u = (np.arange(c0, c1, dtype=np.float32)[None] + .5 - self.xv) * z / self.f
        return (slice(r0, r1), slice(c0, c1)), u, self._rows(r0, r1, z)

    def plane(self, x, z0, z1, top):
        """Vertical plane along the street at lateral x, depths z0..z1, ground up to top(z).

        Returns (window, depth per column (1,n), world height (m,n), mask, top (1,n)) or None.
        """
        x, z0, z1 = float(x), float(z0), float(z1)
        c0, c1 = self._span(*sorted((self.xv + self.f * x / z0, self.xv + self.f * x / z1)), self.w)
        if c1 <= c0 or abs(x) < .05:
            return None
        with np.errstate(divide="ignore"):
            z = self.f * x / (np.arange(c0, c1, dtype=np.float32) + .5 - self.xv)
        valid, z = (z >= z0) & (z <= z1), np.clip(z, z0, z1)
        hh = np.asarray(top(z), np.float32)
        r0 = max(0, int(np.floor((self.yh + self.f * (_CAM_HEIGHT - hh) / z).min())))
        r1 = min(self.h, int(np.ceil((self.yh + self.f * _CAM_HEIGHT / z).max())))
        if r1 <= r0:
            return None
        v = self._rows(r0, r1, z)
        return (slice(r0, r1), slice(c0, c1)), z[None], v, valid & (v >= 0) & (v < hh), hh[None]


def _frac(x):
    return x - np.floor(x)  # np.mod is several times slower


def _fine_line(dist, px_per_m, width_m):
    """Pixels within a line of width_m metres, at least one pixel wide so it never breaks up."""
    return np.abs(dist) * px_per_m < np.maximum(.5, .5 * width_m * px_per_m)


def _grid(coord, period, px_per_m):
    m = _frac(coord / period) * period  # tile joints; dropped where tiles get smaller than 4 px
    return _fine_line(np.minimum(m, period - m), px_per_m, .04) & (period * px_per_m >= 4)


def _facade(u, v, top, base, spacing, floor_h, wfrac, shop, lit, salt):
    """Facade colours and lit-window mask from facade coordinates (u along, v up, metres)."""
    cu, cv = u / spacing, v / floor_h
    iu, iv = np.floor(cu), np.floor(cv)
    fu, fv = cu - iu, cv - iv
    cell = _frac(np.sin(iu * 12.9898 + iv * 78.233 + salt) * 43758.5453)  # random per window
    window = (np.abs(fu - .5) < wfrac / 2) & (fv > .3) & (fv < .78) & (v > 3.6) & (v < top - .9)
    shopw = shop & (np.abs(fu - .5) < .4) & (v > .15) & (v < 2.8)
    shade = 1 - _F(.22) * (v > top - .5) - _F(.08) * (fv < .07) - _F(.12) * (v < 3.2)  # ledges
    col = np.where((window | shopw)[..., None], _GLASS * (.7 + .6 * cell)[..., None],
                   base * shade[..., None])
    lit_mask = (window | shopw) & (cell < lit - _F(.15) * shopw)  # not every shop is open
    return np.where(lit_mask[..., None], _WARM * (.75 + .25 * cell)[..., None], col), lit_mask


def _sky(cv, s, clouds):
    t = np.clip((np.arange(cv.h, dtype=np.float32)[:, None, None] + .5) / max(cv.yh, 1), 0, 1) ** .8
    c = np.clip((clouds + s.cloudy - 1) * 1.5, 0, 1)[..., None] * (1 - .6 * t)
    cloud = np.minimum(s.sky_hor * 1.05 + 25, 255)
    col = (s.sky_top * (1 - t) + s.sky_hor * t) * (1 - c) + cloud * c
    cv.paint((slice(0, cv.h), slice(0, cv.w)), True, L.sky, col, 0, glow=True)


def _back_block(cv, s, r):
    """Buildings (or trees) across the far end of the street, so nothing lies beyond it."""
    bounds = np.cumsum(r.uniform(8, 22, 48)) - 400
    heights, base = r.uniform(5, 28, 49).astype(np.float32), _FACADES[r.integers(0, 10, 49)]
    z = s.z_end
    rc = cv.rect(-cv.xv * z / cv.f - 1, (cv.w - cv.xv) * z / cv.f + 1, z, 0, 28)
    if rc is None:
        return
    win, u, v = rc
    i = np.searchsorted(bounds, u)
    if s.back_trees:
        cv.paint(win, v < heights[i] * .5 + np.sin(u * 1.7) * .8, L.vegetation, s.leaf * .8, z)
        return
    col, lit = _facade(u, v, heights[i], base[i] * .9, 3.0, 3.2, .5, False, s.lit, 7.0)
    cv.paint(win, v < heights[i], L.building, col, z, glow=lit)


def _ground(cv, s):
    rows = np.arange(max(0, int(np.floor(cv.yh - .5)) + 1), cv.h, dtype=np.float32)[:, None] + .5
    if rows.size == 0:  # horizon at the very bottom
        return
    z = np.minimum(cv.f * _CAM_HEIGHT / (rows - cv.yh), 3000)
    ppx = cv.f / z  # pixels per metre across the street
    x = (np.arange(cv.w, dtype=np.float32)[None] + .5 - cv.xv) / ppx
    win = (slice(cv.h - rows.size, cv.h), slice(0, cv.w))
    cv.paint(win, True, L.terrain, s.grass, z)
    side = ((x >= s.xl - s.sw[0]) & (x < s.xl)) | ((x > s.xr) & (x <= s.xr + s.sw[1]))
    tiles = _grid(x, s.tile, ppx) | _grid(z, s.tile, ppx * _CAM_HEIGHT / z)
    curb = _fine_line(np.minimum(np.abs(x - s.xl), np.abs(x - s.xr)), ppx, .5)
    pave = s.pave * (1 - _F(.16) * tiles[..., None]) * (1 + _F(.12) * curb[..., None])
    cv.paint(win, side, L.sidewalk, pave, z)
    mark = (z > s.zebra) & (z < s.zebra + 4) & (_frac(x) < .5) & bool(s.zebra)  # crossing
    for lx, dashed in s.lines:
        mark |= _fine_line(x - lx, ppx, .15) & ((not dashed) | (_frac((z + s.dash) / 9) < .39))
    asphalt = np.where(mark[..., None], s.paint, s.asphalt)
    cv.paint(win, (x >= s.xl) & (x <= s.xr), L.road, asphalt, z)
    if s.shadow:  # a facade's cast shadow over part of the street
        sx, width = s.shadow
        shaded = x * sx > (s.xr if sx > 0 else -s.xl) + s.sw[(sx + 1) // 2] - width
        cv.img[win] *= np.where(shaded, _F(.55), _F(1))[..., None]


def _street_side(cv, s, r, sx):
    """Facades (or a park with a hedge line and a fence or wall) along one side."""
    edge = (s.xr if sx > 0 else s.xl) + sx * s.sw[(sx + 1) // 2]
    shade = .62 if s.shadow and s.shadow[0] == sx else 1.0
    if not s.park[(sx + 1) // 2]:
        bounds = np.cumsum(r.uniform(6, 24, 24)) - r.uniform(0, 15)  # one building each
        heights, base = r.uniform(6, 26, 25), _FACADES[r.integers(0, len(_FACADES), 25)]
        base = base * r.uniform(.85, 1.1, (25, 1)) * shade
        spacing, floor_h, wfrac = r.uniform((2, 2.9, .3), (3.8, 3.5, .65), (25, 3)).T
        heights, base, spacing, floor_h, wfrac = (a.astype(np.float32) for a in (
            heights, base, spacing, floor_h, wfrac))  # float64 would double the pixel work
        shop = r.random(25) < .5
        p = cv.plane(edge, .5, s.z_end, lambda z: heights[np.searchsorted(bounds, z)])
        if p:
            win, z, v, mask, top = p
            i = np.searchsorted(bounds, z)
            col, lit = _facade(z, v, top, base[i], spacing[i], floor_h[i], wfrac[i], shop[i],
                               s.lit, sx * 3.3)
            cv.paint(win, mask, L.building, col, z, glow=lit)
        return
    back = edge + sx * r.uniform(4, 14)
    ph, h0 = r.uniform(0, 2 * np.pi, 3), r.uniform(3, 7)
    p = cv.plane(back, .5, s.z_end, lambda z: h0 + 1.2 * np.sin(z / 3.1 + ph[0])
                 + .8 * np.sin(z / 1.3 + ph[1]) + 1.5 * np.sin(z / 11 + ph[2]))
    if p:
        win, z, v, mask, top = p
        cv.paint(win, mask, L.vegetation, s.leaf * shade * (.55 + .45 * v / top)[..., None], z)
    kind, fh, z0 = r.integers(0, 3), r.uniform(1.0, 1.9), r.uniform(2, 20)
    p = kind and cv.plane(edge, z0, z0 + r.uniform(15, 80), lambda z: np.full_like(z, fh))
    if p and kind == 1:  # wire-mesh fence between posts
        win, z, v, mask, _ = p
        wire = _grid(z, 2.5, cv.f / z) | (_frac(z * 5) < .3) | (_frac(v * 5) < .25)
        cv.paint(win, mask, L.fence, np.where(wire[..., None], 150, 95) * shade, z)
    elif p:
        win, z, v, mask, _ = p
        col = np.where((v > fh - .12)[..., None], (175, 170, 160), (150, 144, 132))
        cv.paint(win, mask, L.wall, col * shade, z)


def _vehicle(cv, s, x, z, r, cls):
    car = cls == L.car
    w, h, length = ((r.uniform(1.7, 1.9), r.uniform(1.4, 1.55), r.uniform(3.9, 4.8)) if car
                    else (2.5, r.uniform(2.9, 3.4), r.uniform(8, 12)))
    body = ((_CARS[r.integers(len(_CARS))] * r.uniform(.85, 1.15) if r.random() < .8
             else r.uniform(20, 235, 3)) if car else r.uniform(60, 230, 3))
    glass, inst, belt = _GLASS * r.uniform(.6, 1.1), cv.new_instance(cls), .95 if car else 1.2
    sx = x - w / 2 if x - w / 2 > .05 else x + w / 2 if x + w / 2 < -.05 else None
    p = sx is not None and cv.plane(sx, z, z + length, lambda zz: np.full_like(zz, h))
    if p:  # the side, farther than the rear, so painted first
        win, zz, v, mask, _ = p
        u = zz - z
        lo, hi = (.2 * length + (v - belt) * .8, .8 * length - (v - belt)) if car else (0, length)
        pane = (v > belt + .05) & (v < h - .08) & (u > lo + .1) & (u < hi - .1)
        wheel = np.minimum((u - .8) ** 2, (u - length + .9) ** 2) + (v - .33) ** 2 < .33 ** 2
        col = np.where(wheel[..., None], 20, np.where(pane[..., None], glass, body * .8))
        cv.paint(win, mask & ((v < belt) | ((u > lo) & (u < hi))), cls, col, zz, inst)
    rc = cv.rect(x - w / 2, x + w / 2, z, 0, h)
    if rc is None:
        return
    win, u, v = rc
    du = np.abs(u - x)
    cabin = du < w / 2 - .12 - (v - belt) * .35  # the roof narrows toward the top
    pane = ((v > belt + .05) & (v < h - .07) & (du < w / 2 - .2 - (v - belt) * .35)) if car \
        else (v > 1.3) & (v < h - .4) & (du < w / 2 - .15) & (cls == L.bus)
    lamp = (v > .72) & (v < .88) & (du > w / 2 - .38) & (du < w / 2 - .05)
    col = np.where(pane[..., None], glass, body)
    col = np.where((v < .3)[..., None], np.where((du > w / 2 - .3)[..., None], 18, 40), col)
    col = np.where(((v > .38) & (v < .5) & (du < .26))[..., None], 220,  # number plate
                   np.where(lamp[..., None], s.taillight, col))
    cv.paint(win, (v < belt) | cabin if car else True, cls, col, z, inst, glow=lamp & s.night)


def _person(cv, s, x, z, r, _):
    h, stride = r.uniform(1.55, 1.95), r.uniform(0, .16)
    top, legs = _CLOTHES[r.integers(0, len(_CLOTHES), 2)] * r.uniform(.8, 1.2, (2, 1))
    skin, hair = r.uniform(.35, 1) * np.array([225, 180, 150]), r.uniform(20, 120)
    inst, rc = cv.new_instance(L.person), cv.rect(x - .4, x + .4, z, 0, h)
    if rc is None:
        return
    win, u, v = rc
    du, hip = u - x, .5 * h
    t = np.clip((hip - v) / hip, 0, 1) * stride  # legs apart toward the feet: walking
    leg = (v < hip) & (np.minimum(np.abs(du + .08 + t), np.abs(du - .08 - t)) < .075)
    cv.paint(win, leg, L.person, legs, z, inst)
    torso = (v >= hip - .05) & (v < h - .22) & (np.abs(du) < .2 + .04 * (v > h - .55))
    cv.paint(win, torso, L.person, top, z, inst)
    head = (du / .1) ** 2 + ((v - h + .12) / .125) ** 2 < 1
    cv.paint(win, head, L.person, np.where((v > h - .1)[..., None], hair, skin), z, inst)


def _tree(cv, s, x, z, r, _):
    th, cr = r.uniform(1.8, 3.2), r.uniform(1.2, 2.6)
    cx, cy = x + r.normal(0, cr * .35, 5), th + cr + r.normal(0, cr * .3, 5)
    rad, leaf = cr * r.uniform(.5, .8, 5), s.leaf * r.uniform(.8, 1.2, 3)
    rc = cv.rect(x - .13, x + .13, z, 0, th + cr * .6, min_px=True)
    if rc:
        cv.paint(rc[0], True, L.vegetation, (78, 64, 50), z)
    rc = cv.rect(x - 2.2 * cr, x + 2.2 * cr, z, th - .2, th + 2.8 * cr)
    if rc:
        win, u, v = rc
        mask = np.any([(u - a) ** 2 + (v - b) ** 2 < c ** 2 for a, b, c in zip(cx, cy, rad)], 0)
        col = leaf * np.clip(.6 + .45 * (v - th) / (2.2 * cr), .5, 1.1)[..., None]
        cv.paint(win, mask, L.vegetation, col, z)


_SIGNS = (((30, 80, 170), (30, 80, 170)), ((190, 25, 30), (235, 235, 235)),
          ((240, 240, 235), (230, 185, 30)), ((30, 80, 170), (235, 235, 235)))  # outer, inner


def _pole(cv, s, x, z, r, _):
    h, kind, grey = r.uniform(3.5, 7), r.choice(3, p=[.3, .45, .25]), r.uniform(80, 150)
    shape, sign_h, lit = r.integers(0, 4), r.uniform(2.2, h - .3), r.integers(0, 3)
    rc = cv.rect(x - .07, x + .07, z, 0, h, min_px=True)
    if rc:
        cv.paint(rc[0], True, L.pole, grey, z)
    rc = cv.rect(x - .32, x + .32, z, sign_h - .32, sign_h + .32, min_px=True) if kind == 1 else \
        cv.rect(x - .18, x + .18, z, h - .95, h, min_px=True) if kind == 2 else None
    if rc and kind == 1:
        win, u, v = rc
        d, diamond = np.hypot(u - x, v - sign_h), np.abs(u - x) + np.abs(v - sign_h) < .32
        mask = [d < .3, d < .3, diamond, np.abs(u - x) < .3][shape]
        outer, inner = _SIGNS[shape]
        cv.paint(win, mask, L.traffic_sign, np.where((d < .2)[..., None], inner, outer), z)
    elif rc:
        win, u, v = rc
        lamp = (u - x) ** 2 + (v - (h - .2 - .3 * lit)) ** 2 < .11 ** 2
        colour = ((255, 40, 30), (255, 170, 20), (40, 230, 120))[lit]
        cv.paint(win, True, L.traffic_light, np.where(lamp[..., None], colour, 32), z, glow=lamp)


def _static(cv, s, x, z, r, _):
    w, h = (.14, .9) if r.random() < .5 else (.6, 1.05)  # bollard or bin
    rc = cv.rect(x - w / 2, x + w / 2, z, 0, h, min_px=True)
    if rc:
        cv.paint(rc[0], True, L.static, r.uniform(30, 120) * r.uniform(.7, 1.3, 3), z)


def _layout(rng):
    """Everything random about a scene, drawn in a fixed order independent of the image size."""
    name, _, sky_top, sky_hor, gain, sat, haze, lit = _LIGHTING[
        rng.choice(len(_LIGHTING), p=[x[1] for x in _LIGHTING])]
    s = types.SimpleNamespace(
        focal=rng.uniform(.7, .9), horizon=rng.uniform(.36, .48), vanish=rng.uniform(.42, .58),
        sky_top=np.array(sky_top) * rng.uniform(.92, 1.08, 3),
        sky_hor=np.array(sky_hor) * rng.uniform(.94, 1.06, 3),
        gain=np.array(gain) * rng.uniform(.95, 1.05, 3) * rng.uniform(.88, 1.12),
        sat=sat, haze=haze * rng.uniform(.7, 1.3), lit=lit, night=name == "dusk",
        cloudy=rng.uniform(.1, .7), z_end=rng.uniform(70, 220), back_trees=rng.random() < .25,
        grass=np.array([88, 118, 48]) * rng.uniform(.8, 1.2, 3),
        leaf=np.array([68, 108, 42]) * rng.uniform(.75, 1.25, 3),
        pave=rng.uniform(140, 190) * rng.uniform(.95, 1.05, 3), tile=rng.uniform(.4, 1.0),
        asphalt=rng.uniform(78, 122) * np.array([1, 1, 1.03]),
        paint=np.array((225, 225, 220) if rng.random() < .85 else (225, 185, 60)),
        taillight=np.array((255, 70, 60) if name == "dusk" else (185, 28, 28)),
        sw=rng.uniform(2, 5, 2), park=rng.random(2) < .25, dash=rng.uniform(0, 9),
        hood=rng.uniform(.06, .12), hood_col=rng.uniform(25, 70) * rng.uniform(.9, 1.1, 3))
    left, right = rng.integers(1, 3), rng.integers(0, 2)  # lanes beside the ego lane
    parking = rng.random(2) < .5
    s.xl = float(-1.6 - 3.2 * left - 2.2 * parking[0])  # road edges, metres from the camera
    s.xr = float(1.6 + 3.2 * right + 2.2 * parking[1])
    s.lines = [(-1.6 + 3.2 * k, k != 0 or rng.random() < .5) for k in range(-left + 1, right + 1)]
    s.lines += [(-1.6 - 3.2 * left, False), (1.6 + 3.2 * right, False)]
    s.zebra = rng.uniform(8, 25) if rng.random() < .3 else 0
    sun = rng.integers(-1, 2) if name in ("day", "evening") else 0
    s.shadow = (int(sun), rng.uniform(2, 9)) if sun else None
    lanes = (3.2 * np.arange(-left, right + 1)).tolist()
    objs = []  # (depth, drawer, lateral position, argument)
    for sx, on in zip((-1, 1), parking):
        z = rng.uniform(5, 14)
        for _ in range(rng.integers(1, 6) if on else 0):
            objs.append((z, _vehicle, (s.xr - 1.1) if sx > 0 else (s.xl + 1.1), L.car))
            z += rng.uniform(5, 9)
    for _ in range(rng.integers(1, 5)):
        lane = lanes[rng.integers(len(lanes))]
        objs.append((rng.uniform(9 if lane == 0 else 6, 60), _vehicle, lane, L.car))
    if rng.random() < .3:
        objs.append((rng.uniform(12, 50), _vehicle, lanes[rng.integers(len(lanes))],
                     L.bus if rng.random() < .5 else L.truck))

    def walk(sx, a, b):  # a lateral position on one sidewalk, a..b its width from the curb
        return s.xr + s.sw[1] * rng.uniform(a, b) if sx > 0 else s.xl - s.sw[0] * rng.uniform(a, b)

    for _ in range(rng.integers(0, 8)):
        z = np.exp(rng.uniform(np.log(4.5), np.log(45)))  # more people near than far
        objs.append((z, _person, walk(rng.choice([-1, 1]), .2, .85), None))
    for _ in range(rng.integers(1, 4) if s.zebra and rng.random() < .6 else 0):
        objs.append((s.zebra + rng.uniform(.5, 3.5), _person, rng.uniform(s.xl, s.xr), None))
    for sx in (-1, 1):
        park, z = s.park[(sx + 1) // 2], rng.uniform(4, 15)
        row = park or rng.random() < .6
        while row and z < 90:
            objs.append((z, _tree, walk(sx, 1.2, 1.8) if park else walk(sx, .75, .9), None))
            z += rng.uniform(6, 16)
    for _ in range(rng.integers(2, 7)):
        objs.append((rng.uniform(5, 60), _pole, walk(rng.choice([-1, 1]), .08, .15), None))
    for _ in range(rng.integers(0, 5)):
        objs.append((rng.uniform(4.5, 40), _static, walk(rng.choice([-1, 1]), .1, .95), None))
    s.objs = [(z, fn, x, arg, rng.integers(2 ** 32)) for z, fn, x, arg in objs]
    s.seeds = rng.integers(2 ** 32, size=3)
    for key, value in vars(s).items():  # float64 colours would upcast whole images
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            setattr(s, key, value.astype(np.float32))
    return s


def _smooth_noise(rng, height, width, cell):
    small = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
    big = Image.fromarray(small).resize((width + 2 * cell, height + 2 * cell), Image.BICUBIC)
    return np.asarray(big)[cell:cell + height, cell:cell + width]


def render_scene(seed: int, index: int, height: int, width: int) -> Scene:
    """Renders one procedural street scene.

    Args:
      seed: non-negative dataset seed.
      index: non-negative scene number within the dataset.
      height: image height in pixels, at least 32.
      width: image width in pixels, at least 32.

    Returns:
      The scene; identical for identical arguments, and the same layout at every size.

    Raises:
      ValueError: for a size below 32 or a negative seed or index.
    """
    if height < 32 or width < 32:
        raise ValueError(f"scene size must be at least 32x32, got {height}x{width}")
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    s = _layout(np.random.default_rng([seed, index]))
    noise = np.random.default_rng([seed, index, 1])
    # Focal length from max(width, 2 * height): a square image is the centre crop of a 1:2 one.
    cv = _Canvas(height, width, s.focal * max(width, 2 * height), s.horizon * height,
                 s.vanish * width)
    big = max(height, width)
    _sky(cv, s, _smooth_noise(noise, height, width, max(4, big // 6)))
    _back_block(cv, s, np.random.default_rng(s.seeds[0]))
    _ground(cv, s)
    for sx, child in zip((-1, 1), s.seeds[1:]):
        _street_side(cv, s, np.random.default_rng(child), sx)
    for z, fn, x, arg, child in sorted(s.objs, key=lambda o: -o[0]):  # painter's algorithm
        fn(cv, s, x, z, np.random.default_rng(child), arg)
    rows = (np.arange(height, dtype=np.float32)[:, None] + .5) / height
    xn = (np.arange(width, dtype=np.float32) + .5) / width * 2 - 1
    shine = 1 + .5 * np.exp(-((rows - 1 + s.hood * .4) * 40) ** 2)  # highlight across the hood
    cv.paint((slice(0, height), slice(0, width)), rows > 1 - s.hood * (1 - .35 * xn ** 2),
             L.ego_vehicle, s.hood_col * shine[..., None], .5)

    grain = noise.standard_normal((height, width), dtype=np.float32)
    blotch = _smooth_noise(noise, height, width, max(2, big // 24))
    img = cv.img * (1 + _FINE[cv.label] * grain + _LOW[cv.label] * blotch)[..., None]
    lum = img.mean(-1, keepdims=True)
    img = np.where(cv.glow[..., None], img, ((img - lum) * s.sat + lum) * s.gain)
    img += (s.sky_hor * .9 - img) * (1 - np.exp(-cv.depth / s.haze))[..., None]  # haze
    image = np.clip(img + .5, 0, 255).astype(np.uint8)
    return Scene(image, cv.label, cv.inst, f"synthetic_s{seed}_{index:06d}")


def generate(num_examples: int, height: int, width: int, seed: int = 0,
             start: int = 0) -> Iterator[Scene]:
    """Yields scenes ``start .. start + num_examples - 1`` of dataset ``seed``."""
    for index in range(start, start + num_examples):
        yield render_scene(seed, index, height, width)


def write_cityscapes_layout(root: str | os.PathLike, num_examples: int, height: int, width: int,
                            seed: int = 0, split: str = "train",
                            city: str = "synthville") -> list[str]:
    """Writes scenes ``0 .. num_examples - 1`` with the official Cityscapes layout and names.

    With ``base = f"{city}_000000_{index:06d}"``, writes
    ``leftImg8bit/<split>/<city>/<base>_leftImg8bit.png`` (RGB) and, in ``gtFine/<split>/<city>/``,
    ``<base>_gtFine_labelIds.png`` (8-bit grey), ``<base>_gtFine_instanceIds.png`` (16-bit grey)
    and ``<base>_gtFine_color.png`` (RGB, official colours). Folders are created as needed.

    Returns:
      The base names written, in index order.
    """
    images = os.path.join(os.fspath(root), "leftImg8bit", split, city)
    gt = os.path.join(os.fspath(root), "gtFine", split, city)
    os.makedirs(images, exist_ok=True)
    os.makedirs(gt, exist_ok=True)
    names = []
    for index, scene in enumerate(generate(num_examples, height, width, seed)):
        base = f"{city}_000000_{index:06d}"
        Image.fromarray(scene.image).save(os.path.join(images, f"{base}_leftImg8bit.png"))
        Image.fromarray(scene.label).save(os.path.join(gt, f"{base}_gtFine_labelIds.png"))
        Image.fromarray(scene.instance.astype(np.uint16)).save(
            os.path.join(gt, f"{base}_gtFine_instanceIds.png"))
        color = label_spaces.colorize(scene.label, "cityscapes35")  # ids 0..33 are official
        Image.fromarray(color).save(os.path.join(gt, f"{base}_gtFine_color.png"))
        names.append(base)
    return names
