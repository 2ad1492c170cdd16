"""Which features could a learned class gate read? A probe on one trained ORNet run (issue 30).

    python benchmarks/studies/gate_probe.py RUN [--threads 2] [--steps 400]

RUN is an `ornet train` folder of a run with a tune split (`data.tune_per_class` or `data.tune_list`,
e.g. one of `benchmarks/studies/tune.py`'s). The probe keeps that run's plain map p_a (the generator
with its learned gate switched off) and multiplies it by ``up(sigmoid(w . F + b)) ** alpha``, a
class-agnostic 1x1 head (w, b) fitted here by Adam (`--steps`, lr 0.01) to the binary cross-entropy
against the evaluator's min-max CAM of the label on the training images (what stage 2's objectness
loss asks), for three feature maps F at 1/32 of the image:

- ``run x3``: the run's own generator encoder (fine-tuned by stage 1);
- ``imagenet``: the same stages with the ImageNet weights, before any fine-tuning;
- ``evaluator``: the trained evaluator's last block (before its 1x1 head conv), what
  `model.freeze_features` with `model.backbone_weights: evaluator` gives the generator.

The product is the generator's (raw p_a times the gate). Beside them: the plain map, the run's own learned gate (if it has one) and the evaluator's CAM of the
label itself (the test-time class gate, on min-max p_a as `ORNet.predict`). GT-known Loc on the tune split at the threshold chosen on val
(the protocol), largest box, min-max maps. Read the test split nowhere. Needs a run whose backbone has
offline ImageNet weights (efficientnet_lite0) for the ``imagenet`` row.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=400)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    import ornet
    from ornet.localization.metrics import BoxAccuracySweep
    from ornet.localization.sweep import choose_threshold, summarize
    from ornet.models.cam_network import minmax_normalize as minmax
    from ornet.models.ornet_network import ORNet

    loc = ornet.load_model(args.run, device="cpu")
    net, gen = loc.model, loc.model.generator
    cfg = ornet.load_config(f"{args.run}/config.yaml")
    index = ornet.read_dataset(cfg.data)
    if not index.splits.get("tune"):
        raise SystemExit(f"{args.run}: its config has no tune split (data.tune_per_class / data.tune_list)")
    fc = net.cam_linear("the probe")
    imagenet = ORNet(cfg.model.backbone, net.num_classes, evaluator=None, backbone_weights="imagenet",
                     generator_encoder="backbone", generator_width=4).eval()
    learned = gen.obj_conv is not None

    def collect(records) -> dict:
        out: dict = {k: [] for k in ("plain", "x3", "imagenet", "evaluator", "cam", "label", *(("own",) if learned else ()))}
        out["boxes"], out["sizes"] = [], []
        for i in range(0, len(records), 32):
            chunk = records[i:i + 32]
            x, sizes = loc.preprocess([r.path for r in chunk])
            labels = torch.tensor([r.label for r in chunk])
            with torch.no_grad():
                on, gen._obj_on = gen._obj_on, False
                f_c = net.stem(x)
                out["plain"].append(gen(f_c).p_a)
                gen._obj_on = on
                x3 = gen.encoder(f_c)[2]
                out["x3"].append(x3)
                if learned:
                    out["own"].append(gen.obj_conv(x3))
                out["imagenet"].append(imagenet.generator.encoder(imagenet.stem(x))[2])
                ev = net.evaluator
                out["evaluator"].append(ev.rest.blocks(ev.stem(net.to_evaluator(x))))
                out["cam"].append(net.label_cam(x, labels, [x3.shape[-2:]], fc)[0])
            out["label"].append(labels)
            out["boxes"] += [torch.as_tensor(np.asarray(r.boxes, dtype=np.float32)).reshape(-1, 4) for r in chunk]
            out["sizes"] += sizes
        return {k: torch.cat(v) if k not in ("boxes", "sizes") else v for k, v in out.items()}

    data = {split: collect(index.splits[split]) for split in ("train", "val", "tune")}

    target = minmax(data["train"]["cam"])

    def fit(key: str):
        feats = data["train"][key]
        w = torch.zeros(feats.shape[1], requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([w, b], lr=0.01)
        for _ in range(args.steps):
            loss = F.binary_cross_entropy_with_logits(torch.einsum("bchw,c->bhw", feats, w)[:, None] + b, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return lambda d: torch.sigmoid(torch.einsum("bchw,c->bhw", d[key], w.detach())[:, None] + b.detach())

    gates = {f"head on {name}": fit(key) for name, key in
             (("run x3", "x3"), ("imagenet", "imagenet"), ("evaluator", "evaluator"))}
    if learned:
        gates["the run's own learned gate"] = lambda d: torch.sigmoid(d["own"])
    gates["the evaluator's label CAM"] = lambda d: minmax(d["cam"])

    def score(d, maps):
        metric = BoxAccuracySweep(box_mode="largest")
        for i in range(len(maps)):
            metric.update(maps[i:i + 1], [d["boxes"][i]], image_size=tuple(d["sizes"][i]))
        return metric.compute()

    def gt_known(maps_of) -> tuple[float, float]:
        val = score(data["val"], maps_of(data["val"]))
        tune = score(data["tune"], maps_of(data["tune"]))
        return summarize(val)["gt_known_loc"], summarize(tune, choose_threshold(val))["gt_known_loc"]

    print(f"{args.run}: train {len(data['train']['label'])}, val {len(data['val']['label'])}, "
          f"tune {len(data['tune']['label'])} images")
    print("| map | alpha | val GT-known | tune GT-known |\n| --- | --- | --- | --- |")
    v, t = gt_known(lambda d: d["plain"])
    print(f"| plain p_a | - | {v:.1f} | {t:.1f} |")
    for name, gate in gates.items():
        for alpha in (0.25, 0.5, 1.0):
            def maps_of(d, gate=gate, alpha=alpha, name=name):
                g = F.interpolate(gate(d), size=d["plain"].shape[-2:], mode="bilinear", align_corners=False)
                p_a = minmax(d["plain"]) if name.endswith("CAM") else d["plain"]  # as `ORNet.predict` / the generator
                return p_a * g ** alpha
            v, t = gt_known(maps_of)
            print(f"| p_a x {name} | {alpha} | {v:.1f} | {t:.1f} |", flush=True)


if __name__ == "__main__":
    main()
