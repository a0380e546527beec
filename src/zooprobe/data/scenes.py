"""Procedural 3D scenes with exact depth, surface normals and figure-ground masks, in numpy.

Each scene is ray-cast through a pinhole camera at the origin looking along +z (x right,
y up): a textured ground plane and back wall, and a few spheres and boxes (rotated about the
vertical axis) with their own colours and textures, lit by ambient light plus one directional
light with hard shadows. Every pixel's nearest hit gives the image and its labels:

* depth: the z coordinate of the hit in camera space (metres of a virtual scene);
* normals: the unit surface normal in camera space, facing the camera;
* mask: 1 where an object (sphere or box) is hit, 0 on the ground plane and wall (figure-ground).

Scenes are deterministic given the seed, and render at any resolution (the same seed gives
the same scene at every resolution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIELD_OF_VIEW_DEG = 60.0
GROUND_Y = -1.0
WALL_Z = 9.0
AMBIENT = 0.3
# Surface offset for shadow rays, so a surface does not shadow itself.
EPSILON = 1e-4


@dataclass(frozen=True)
class Scene:
    """One rendered scene: uint8 (H, W, 3) image, float32 (H, W) depth, (H, W, 3) normals, uint8 (H, W) mask."""

    image: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    mask: np.ndarray


def _rays(size: int) -> np.ndarray:
    """Unit ray directions (size, size, 3) through pixel centres, row 0 at the top."""
    focal = 0.5 / np.tan(np.radians(FIELD_OF_VIEW_DEG) / 2)
    coords = (np.arange(size) + 0.5) / size - 0.5
    x, y = np.meshgrid(coords, -coords)
    d = np.stack([x, y, np.full_like(x, focal)], axis=-1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _hit_plane(d: np.ndarray, o: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Distance along rays o + t d to the plane normal . p = offset (inf where missed or behind)."""
    denom = d @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (offset - o @ normal) / denom
    return np.where((np.abs(denom) > 1e-9) & (t > EPSILON), t, np.inf)


def _hit_sphere(d: np.ndarray, o: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    oc = o - centre
    b = (d * oc).sum(-1)
    c = (oc * oc).sum(-1) - radius ** 2
    disc = b * b - c
    root = np.sqrt(np.maximum(disc, 0))
    near, far = -b - root, -b + root
    t = np.where(near > EPSILON, near, far)
    return np.where((disc >= 0) & (t > EPSILON), t, np.inf)


def _rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _hit_box(d: np.ndarray, o: np.ndarray, centre: np.ndarray, half: np.ndarray, rotation: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Slab test in the box's frame; returns distances and the hit face's normal in camera space."""
    local_o = (o - centre) @ rotation  # rotation.T applied to row vectors
    local_d = d @ rotation
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - local_o) / local_d
        t2 = (half - local_o) / local_d
    t_near = np.nanmax(np.minimum(t1, t2), axis=-1)
    t_far = np.nanmin(np.maximum(t1, t2), axis=-1)
    hit = (t_near <= t_far) & (t_far > EPSILON)
    t = np.where(t_near > EPSILON, t_near, t_far)
    t = np.where(hit, t, np.inf)
    point = local_o + t[..., None] * local_d
    # The face is the axis where the hit point lies on the box's surface.
    axis = np.argmax(np.abs(point) / half, axis=-1)
    local_n = np.zeros(point.shape)
    np.put_along_axis(local_n, axis[..., None], np.sign(np.take_along_axis(point, axis[..., None], -1)), -1)
    return t, local_n @ rotation.T


def _texture(kind: int, point: np.ndarray, scale: float) -> np.ndarray:
    """Brightness factor in [0.55, 1]: 0 plain, 1 checker, 2 stripes."""
    if kind == 1:
        checker = (np.floor(point[..., 0] * scale) + np.floor(point[..., 1] * scale)
                   + np.floor(point[..., 2] * scale)) % 2
        return 0.6 + 0.4 * checker
    if kind == 2:
        return 0.55 + 0.45 * (0.5 + 0.5 * np.sin(point[..., 1] * scale * 6))
    return np.ones(point.shape[:-1])


def _scene_layout(seed: int) -> dict[str, object]:
    """The random parts of a scene, drawn from the seed alone (so resolution does not change them)."""
    rng = np.random.default_rng(seed)
    objects = []
    for _ in range(int(rng.integers(2, 5))):
        kind = "sphere" if rng.random() < 0.5 else "box"
        size = rng.uniform(0.35, 0.8)
        centre = np.array([rng.uniform(-2.0, 2.0), GROUND_Y + size, rng.uniform(3.0, 7.5)])
        objects.append({"kind": kind, "centre": centre, "size": size, "half": np.array([size, size * rng.uniform(0.6, 1.4),
                                                                                         size]),
                        "rotation": _rotation_y(rng.uniform(0, np.pi / 2)), "colour": rng.uniform(0.25, 1.0, 3),
                        "texture": int(rng.integers(0, 3)), "scale": rng.uniform(2, 6)})
    for obj in objects:
        if obj["kind"] == "box":
            obj["centre"][1] = GROUND_Y + obj["half"][1]
    light = np.array([rng.uniform(-1, 1), rng.uniform(0.6, 1.2), rng.uniform(-1, -0.2)])
    return {"objects": objects, "light": light / np.linalg.norm(light),
            "ground": rng.uniform(0.3, 0.8, 3), "wall": rng.uniform(0.3, 0.8, 3),
            "ground_scale": rng.uniform(0.8, 2.0), "wall_texture": int(rng.integers(0, 3))}


def _trace(d: np.ndarray, o: np.ndarray, layout: dict[str, object]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit per ray: distance, normal, surface index (0 ground, 1 wall, 2+ objects)."""
    up, back = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])
    distances = [_hit_plane(d, o, up, GROUND_Y), _hit_plane(d, o, -back, WALL_Z)]
    normals = [np.broadcast_to(up, d.shape), np.broadcast_to(back, d.shape)]
    for obj in layout["objects"]:
        if obj["kind"] == "sphere":
            t = _hit_sphere(d, o, obj["centre"], obj["size"])
            point = o + np.where(np.isfinite(t), t, 0)[..., None] * d
            n = (point - obj["centre"]) / obj["size"]
        else:
            t, n = _hit_box(d, o, obj["centre"], obj["half"], obj["rotation"])
        distances.append(t)
        normals.append(n)
    stacked = np.stack(distances)
    index = np.argmin(stacked, axis=0)
    t = np.take_along_axis(stacked, index[None], 0)[0]
    normal = np.take_along_axis(np.stack(normals), index[None, ..., None], 0)[0]
    return t, normal, index, stacked


def render_scene(seed: int, size: int) -> Scene:
    """Render the scene of ``seed`` at ``size`` x ``size`` pixels.

    Args:
        seed: picks the objects, colours, textures and light.
        size: image side in pixels.

    Returns:
        The :class:`Scene` with its exact depth, normals and figure-ground mask.
    """
    layout = _scene_layout(seed)
    d = _rays(size)
    origin = np.zeros(3)
    t, normal, index, _ = _trace(d, origin, layout)
    point = t[..., None] * d
    # Normals face the camera.
    normal = np.where(((normal * d).sum(-1) > 0)[..., None], -normal, normal)
    albedo = np.empty(point.shape)
    ground, wall = index == 0, index == 1
    albedo[ground] = layout["ground"] * _texture(1, point[ground], layout["ground_scale"])[:, None]
    albedo[wall] = layout["wall"] * _texture(layout["wall_texture"], point[wall], 1.5)[:, None]
    for i, obj in enumerate(layout["objects"]):
        hit = index == i + 2
        local = (point[hit] - obj["centre"]) @ obj["rotation"]
        albedo[hit] = obj["colour"] * _texture(obj["texture"], local, obj["scale"])[:, None]
    light = layout["light"]
    lambert = np.clip(normal @ light, 0, None)
    # Hard shadows: a ray from the surface towards the light that hits anything first.
    shadow_t, _, _, _ = _trace(np.broadcast_to(light, d.shape), point + normal * 1e-3, layout)
    lit = ~np.isfinite(shadow_t)
    shade = AMBIENT + (1 - AMBIENT) * lambert * lit
    image = np.clip(albedo * shade[..., None], 0, 1)
    return Scene(image=np.round(image * 255).astype(np.uint8), depth=(t * d[..., 2]).astype(np.float32),
                 normals=normal.astype(np.float32), mask=(index >= 2).astype(np.uint8))


def render_scenes(n: int, size: int, seed: int) -> Scene:
    """``n`` scenes stacked along a first axis; scene i uses seed ``seed * 100_003 + i``."""
    scenes = [render_scene(seed * 100_003 + i, size) for i in range(n)]
    return Scene(*(np.stack([getattr(s, f) for s in scenes]) for f in ("image", "depth", "normals", "mask")))
