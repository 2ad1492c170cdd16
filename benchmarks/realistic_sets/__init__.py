"""Realistic WSOL benchmark sets built from real pixels that Debian and PyPI packages ship.

    python benchmarks/realistic_sets objects OUT [--seed 0] [--size 128] [--train-per-class 30]
        [--test-per-class 10] [--contact-sheet /tmp/objects.png] [--force]
    python benchmarks/realistic_sets digits OUT [--seed 0] [--size 96] [--train-per-class 120]
        [--test-per-class 40] [--thicken 0] [--contact-sheet /tmp/digits.png] [--force]

(or `python -m realistic_sets ...` from benchmarks/). Modules: `common` (photos, compositing, the
writer), `objects`, `digits` (one renderer per kind), `__main__` (this command line).

- **objects**: photographic cut-outs with exact alpha masks from Debian's `tuxpaint-stamps-default`
  (`apt-get install -y tuxpaint-stamps-default`; the classes are `OBJECT_CLASSES` in
  `objects.py`, bird stamps left out), pasted with random scale, position, flip and
  colour jitter on random crops of real photos, over 1-4 small pieces of other stamps.
- **digits**: scikit-learn's 1,797 real handwritten digits (8 x 8) upscaled smoothly, pasted with
  random size, slant, aspect and ink colour on random photo crops, over random strokes and pieces
  of other digits (`realistic_digits.py`).

Backgrounds are the photos bundled with scikit-image (`skimage.data`, only files inside the
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
(its `generator` still reads `benchmarks/realistic_sets.py <kind>`, the name before this package).
Needs the `bench` extra (`pip install -e .[bench]`: scikit-image, scikit-learn).
"""
