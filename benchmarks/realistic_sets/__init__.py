"""Realistic WSOL benchmark sets built from real pixels that Debian and PyPI packages ship.

    python benchmarks/realistic_sets objects OUT [--seed 0] [--size 128] [--train-per-class 30]
        [--test-per-class 10] [--contact-sheet /tmp/objects.png] [--force]
    python benchmarks/realistic_sets digits OUT [--seed 0] [--size 96] [--train-per-class 120]
        [--test-per-class 40] [--thicken 0] [--contact-sheet /tmp/digits.png] [--force]
    python benchmarks/realistic_sets objects_heldout OUT --seed 1 [--templates DIR] [same options]
    python benchmarks/realistic_sets digits_heldout OUT --seed 1 [--templates DIR] [same options]

(or `python -m realistic_sets ...` from benchmarks/). Modules: `common` (photos, compositing, the
writer), `objects`, `digits` (one renderer per kind), `__main__` (this command line).

- **objects**: photographic cut-outs with exact alpha masks from Debian's `tuxpaint-stamps-default`
  (`apt-get install -y tuxpaint-stamps-default`; the classes are `OBJECT_CLASSES` in
  `objects.py`, bird stamps left out), pasted with random scale, position, flip and
  colour jitter on random crops of real photos, over 1-4 small pieces of other stamps.
- **digits**: scikit-learn's 1,797 real handwritten digits (8 x 8) upscaled smoothly, pasted with
  random size, slant, aspect and ink colour on random photo crops, over random strokes and pieces
  of other digits (`realistic_digits.py`).

Tuning sets and held-out sets: `objects` and `digits` (seed 0) are TUNING sets: the presets'
settings were chosen on their test figures (issue 27), so their figures are no evidence for a claim.
`objects_heldout` and `digits_heldout` are built by the same renderers for claims, and no setting
was chosen on them (build them with `--seed 1`, as benchmarks/bench_quality.py does; do not tune
on them, and choose settings on the `tune` split of a tuning set):
- **objects_heldout**: 28 other classes (`HELDOUT_CLASSES` in `objects.py`, no stamp or class name
  of `OBJECT_CLASSES`, no bird), the same distractors;
- **digits_heldout**: the same 1,797 digits (no other source ships) with the split turned round:
  test digits are indices 0-448, never a test digit of `digits`; train digits 449-1796;
- both crop other photos: 18 of the 19 photographs that Debian's tuxpaint-data ships as Tux Paint's
  templates (`/usr/share/tuxpaint/templates`, installed with tuxpaint-stamps-default's recommended
  tuxpaint, or `apt-get install -y tuxpaint-data`; `--templates` points elsewhere), 10 for train and 8 for test
  (`common.HELDOUT_TRAIN_PHOTOS` / `HELDOUT_TEST_PHOTOS`; sheep.jpg left out: sheep are a held-out
  class), none of them seen by the tuning sets;
- each kind draws from its own random stream (`common.KIND_STREAM`), so even seed 0 shares no
  random draw with a tuning set; `realistic.json` names the generator `benchmarks/realistic_sets
  <kind>` and adds `heldout` (its role, class and photo sources, the command without OUT).
Birds stay held out of every set (issue 30).

Backgrounds of the tuning sets are the photos bundled with scikit-image (`skimage.data`, only files inside the
package, nothing downloaded) and scikit-learn (`load_sample_images`). Whole photos are split:
train images only crop `TRAIN_PHOTOS`, test images only `TEST_PHOTOS` (the two stereo motorcycle
views, nearly one picture, are both train). Both splits mix colour and grey photos; a grey photo
gets a random colour tint.

Conventions (those of `ornet synth`, docs/synthetic.md): the CUB-200-2011 layout, read with
`--data.name cub`; `bounding_boxes.txt` holds the tight box of the object's mask as `x y w h` with
`x + w <= width` (the mask is foreground where the object's alpha / ink after scaling is > 0.5);
`segmentations/<class>/<file>.png` is that mask as 0 / 255; `backgrounds.txt` (not read by ornet)
names each image's background photo as `<image_id> <photo>`, for `studies/miss_kinds.py --by-background`
(format version 2; version 1 sets have the same images without it); images are JPEG quality 95 with 4:4:4
chroma. The object is pasted last, so distractors never cover it and the mask is exact. Image `i`
(0-based, images.txt order) is drawn from `numpy.random.default_rng((seed, kind, i))`: the output
depends only on the arguments (and the package versions). The set is written into a hidden folder
beside OUT and renamed at the end; `realistic.json` records the arguments and the class sources
(for the tuning kinds its `generator` still reads `benchmarks/realistic_sets.py <kind>`, the name
before this package).
Needs the `bench` extra (`pip install -e .[bench]`: scikit-image, scikit-learn).
"""
