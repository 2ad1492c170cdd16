"""The "objects" set of the realistic sets: tuxpaint photo stamps (exact alpha) on real photo crops.

Classes (`OBJECT_CLASSES`, 28): photographic stamps of mammals, fish and sea animals, insects,
a reptile, an amphibian and fruit / vegetables from Debian's tuxpaint-stamps-default, chosen so
that each class is a distinct object at 128 px. Left out: every bird (held out for an independent
check), drawn or cartoon stamps (hedgehog, echidna, bee, the */cartoon folders), near-identical
round fruit (apples, oranges, apricots, plums: colour blobs that differ by hue only), look-alikes
of a chosen class (bluegroper, moonwrasse and stripedfish beside the other fish; hoverfly and bee
beside hornet; mantis beside grasshopper) and stamps too small to upscale (strawberry.png,
32 x 50; Strawberry2 is used). Near-duplicate stamps of one animal are one class (tiger +
Sumatran tiger, camel + dromedary, the three rabbits, the two frogs).

Held-out classes (`HELDOUT_CLASSES`, 28, the kind "objects_heldout"): photographic stamps of the same
package that no setting was chosen on, disjoint from `OBJECT_CLASSES` (no stamp file, no class name
shared), 22 animals and 6 fruit / vegetables as the tuning classes are 21 and 7, chosen by the same
rules: photographic, no bird, stamps of one animal are one class (the two bears, cow + white cow,
goat + mountain goat, sheep + lamb + ram, the two lions, the four deer, the three pigs, mouse + rat,
the two fish, the two bell peppers, the two garlics), look-alikes of a chosen class left out
(chimpanzee beside gorilla, hippopotamus beside rhinoceros, yak and bull beside bison and cow,
blackbuck beside deer, donkey beside horse, dingo and fox beside dog, wild boar beside pig, beaver
beside capybara), no class with a look-alike among the distractors (mushroom: the ceps; lettuce:
the bolted lettuce; nuts), and round fruit left out as before. Not chosen, to keep 28 classes:
badger, ferret, wombat, marmot, wildebeest, whale, fly, hoverfly and the fruit not listed. The
distractors and the rendering are those of "objects"; only the classes, the photos
(common.HELDOUT_TRAIN_PHOTOS / HELDOUT_TEST_PHOTOS) and the random stream differ.

Distractors: 1-4 pieces (30-70% of each side of the stamp's box) of stamps that are NOT animals
or fruit / vegetables (household, town, vehicles, plants, clothes, ... PNGs; names that look like
birds excluded), each 10-30% of the image side, pasted before the object.

Object: longer side of its tight alpha box 45-90% of the image side, horizontal flip with p 0.5,
colour jitter in HSV (hue +-0.03 turns, saturation and value x 0.7-1.3), position uniform with the
whole object inside the image. Mask: alpha after resizing > 0.5.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .common import background, finish, paste

OBJECT_CLASSES: dict[str, tuple[str, ...]] = {
    "clownfish": ("animals/fish/clownfish.png",),
    "butterflyfish": ("animals/fish/butterflyfish.png",),
    "lionfish": ("animals/fish/lionfish.png",),
    "seahorse": ("animals/fish/seahorse.png",),
    "lobster": ("animals/fish/lobster.png",),
    "orca": ("animals/mammals/aquatic/orca.png",),
    "sea_lion": ("animals/mammals/aquatic/sea_lion.png",),
    "hornet": ("animals/insects/hornet.png",),
    "grasshopper": ("animals/insects/grasshopper.png",),
    "woodlouse": ("animals/insects/Woodlouse.png",),
    "moth": ("animals/insects/xanthia.png",),
    "iguana": ("animals/lizards/iguana.png",),
    "frog": ("animals/amphibians/frog.png", "animals/amphibians/frog-1.png"),
    "elephant": ("animals/mammals/elephant.png",),
    "giraffe": ("animals/mammals/giraffe.png",),
    "zebra": ("animals/mammals/equines/zebra.png",),
    "tiger": ("animals/mammals/cats/tiger.png", "animals/mammals/cats/tiger_sumatran.png"),
    "camel": ("animals/mammals/camel/camel.png", "animals/mammals/camel/dromedary.png"),
    "rabbit": ("animals/mammals/rodents/rabbit.png", "animals/mammals/rodents/rabbit-2.png",
               "animals/mammals/rabbit_little.png"),
    "koala": ("animals/marsupials/koala.png",),
    "squirrel": ("animals/mammals/rodents/squirrel.png",),
    "pineapple": ("food/fruit/pineapple.png",),
    "banana": ("food/fruit/banana.png",),
    "grapes": ("food/fruit/grapes.png",),
    "strawberry": ("food/fruit/Strawberry2.png",),
    "broccoli": ("food/vegetables/broccoli.png",),
    "corn": ("food/vegetables/corn.png",),
    "chili_pepper": ("food/vegetables/chilepepper.png",),
}
HELDOUT_CLASSES: dict[str, tuple[str, ...]] = {
    "gorilla": ("animals/mammals/apes/gorilla.png",),
    "tamarin": ("animals/mammals/apes/tamarin_emperor.png",),
    "dolphin": ("animals/mammals/aquatic/dolphin.png",),
    "otter": ("animals/mammals/aquatic/otter.png",),
    "bear": ("animals/mammals/bears/bear.png", "animals/mammals/bears/european-bear.png"),
    "bison": ("animals/mammals/bovines/bison.png",),
    "cow": ("animals/mammals/bovines/cow.png", "animals/mammals/bovines/cow_white.png"),
    "goat": ("animals/mammals/bovines/goat.png", "animals/mammals/bovines/mountaingoat.png"),
    "sheep": ("animals/mammals/bovines/sheep.png", "animals/mammals/bovines/sheep_lamb.png",
              "animals/mammals/bovines/ram.png"),
    "lion": ("animals/mammals/cats/lion.png", "animals/mammals/cats/lion-2.png"),
    "deer": ("animals/mammals/deer/deer.png", "animals/mammals/deer/doe.png", "animals/mammals/deer/wapiti.png",
             "animals/mammals/deer/caribou.png"),
    "dog": ("animals/mammals/dogs/dog.png",),
    "horse": ("animals/mammals/equines/horse.png",),
    "pig": ("animals/mammals/pig.png", "animals/mammals/pig_golden.png", "animals/mammals/pig_golden2.png"),
    "rhinoceros": ("animals/mammals/rhino_black.png",),
    "kangaroo": ("animals/marsupials/kangaroo.png",),
    "mouse": ("animals/mammals/rodents/mouse.png", "animals/mammals/rodents/rat.png"),
    "capybara": ("animals/mammals/rodents/capybara.png",),
    "fish": ("animals/fish/coraltrout.png", "animals/fish/dolphinfish.png"),
    "shrimp": ("animals/fish/shrimp.png",),
    "mantis": ("animals/insects/mantis.png",),
    "slug": ("animals/insects/Brown_slug.png",),
    "avocado": ("food/fruit/avocado.png",),
    "lemon": ("food/fruit/lemon.png",),
    "cherimoya": ("food/fruit/cherimoya.png",),
    "bell_pepper": ("food/vegetables/pepper.png", "food/vegetables/yellowpepper.png"),
    "carrot": ("food/vegetables/carrot.png",),
    "garlic": ("food/vegetables/garlic.png", "food/vegetables/garlics.png"),
}
"""The classes of "objects_heldout" (the module docstring says how they were chosen)."""
NOT_DISTRACTORS = ("animals/", "food/fruit/", "food/vegetables/")
BIRDISH = re.compile(r"bird|duck|owl|penguin|chicken|hen\b|turkey|eagle|parrot|swan|goose|rooster|pigeon|"
                     r"crow|ostrich|flamingo|peacock|robin|stork|gull|egg", re.I)


def load_stamp(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(RGB h x w x 3 float32 0..255, alpha h x w float32 0..1), cut to the box of alpha > 0."""
    try:
        rgba = np.asarray(Image.open(path).convert("RGBA"), np.float32)
    except OSError as e:
        raise SystemExit(f"{path}: cannot read the stamp ({e}); apt-get install -y tuxpaint-stamps-default") from None
    alpha = rgba[..., 3] / 255.0
    ys, xs = np.nonzero(alpha > 0)
    sl = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    return rgba[..., :3][sl].copy(), alpha[sl].copy()


def resize_rgba(rgb: np.ndarray, alpha: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize with premultiplied alpha (no dark fringes); INTER_AREA down, INTER_CUBIC up."""
    interp = cv2.INTER_AREA if w * h < alpha.size else cv2.INTER_CUBIC
    pre = cv2.resize(rgb * alpha[..., None], (w, h), interpolation=interp)
    a = np.clip(cv2.resize(alpha, (w, h), interpolation=interp), 0, 1)
    return np.clip(pre / np.maximum(a[..., None], 1e-3), 0, 255), a


def jitter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HSV colour jitter: hue +-0.03 turns, saturation and value x 0.7-1.3."""
    hsv = cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-0.03, 0.03) * 180) % 180
    hsv[..., 1:] *= rng.uniform(0.7, 1.3, 2)
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)


class ObjectRenderer:
    """Renders one image of the objects set per (job, rng); see the module docstring."""

    def __init__(self, stamps: Path, photos: dict, size: int,
                 classes: dict[str, tuple[str, ...]] = OBJECT_CLASSES):
        if not stamps.is_dir():
            raise SystemExit(f"{stamps}: no tuxpaint stamps; apt-get install -y tuxpaint-stamps-default")
        self.size, self.photos, self.classes = size, photos, classes
        self.class_names = list(classes)
        self.stamps = [[load_stamp(stamps / rel) for rel in rels] for rels in classes.values()]
        pool = sorted(p for p in stamps.rglob("*.png")
                      if not str(p.relative_to(stamps)).startswith(NOT_DISTRACTORS) and not BIRDISH.search(p.name))
        self.distractor_files = [str(p.relative_to(stamps)) for p in pool]
        self.distractors = [load_stamp(p) for p in pool]

    def meta(self) -> dict:
        return {"stamps": self.classes, "distractor_stamps": len(self.distractor_files)}

    def __call__(self, job, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
        label, split, _ = job
        s = self.size
        photo, img = background(self.photos[split], s, rng)
        for _ in range(int(rng.integers(1, 5))):
            rgb, alpha = self.distractors[int(rng.integers(len(self.distractors)))]
            h, w = alpha.shape
            ph, pw = max(2, int(h * rng.uniform(0.3, 0.7))), max(2, int(w * rng.uniform(0.3, 0.7)))
            y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
            prgb, palpha = rgb[y:y + ph, x:x + pw], alpha[y:y + ph, x:x + pw]
            scale = rng.uniform(0.1, 0.3) * s / max(ph, pw)
            prgb, palpha = resize_rgba(prgb, palpha, max(1, round(pw * scale)), max(1, round(ph * scale)))
            paste(img, prgb, palpha, int(rng.integers(-pw // 4, s)), int(rng.integers(-ph // 4, s)))
        variants = self.stamps[label]
        rgb, alpha = variants[int(rng.integers(len(variants)))]
        h, w = alpha.shape
        scale = rng.uniform(0.45, 0.9) * s / max(h, w)
        w2, h2 = min(s, max(4, round(w * scale))), min(s, max(4, round(h * scale)))
        rgb, alpha = resize_rgba(jitter(rgb, rng), alpha, w2, h2)
        if rng.random() < 0.5:
            rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
        x, y = int(rng.integers(0, s - w2 + 1)), int(rng.integers(0, s - h2 + 1))
        paste(img, rgb, alpha, x, y)
        mask = np.zeros((s, s), np.uint8)
        mask[y:y + h2, x:x + w2][alpha > 0.5] = 255
        return finish(img, rng), mask, photo
