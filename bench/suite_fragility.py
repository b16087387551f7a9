"""How robust are the base model's passes on the regression suite? Side by side in one run:

  greedy:  each suite item answered greedily, as the verdict and the training guard answer it;
  sampled: the same item answered K times at temperature T, and the share of those answers that pass;
  noise:   the base's weights multiplied by (1 + s * Gaussian noise) for a few scales s and seeds, answered
           greedily again: items lost and gained, whether the verdict's pass-rate rule would call it a
           regression, and how far the suite's reference NLL moved.

A greedy pass that sampled answers rarely repeat is a knife-edge pass: almost any change to the weights can lose
it, and a paired sign test over greedy passes then reads losses where nothing was forgotten. The verdict's rule
assumes a change is as likely to be a loss as a gain when nothing changed; the count of knife-edge passes against
knife-edge failures says how far that holds for a base model.

Usage:  .venv/bin/python bench/suite_fragility.py [--samples 8] [--temperature 0.7] [--scales 0.005 0.01]
                                                   [--seeds 3] [--base smollm2-135m]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from evals.generate import load_for_eval  # noqa: E402
from evals.regression import (  # noqa: E402
    load_suite,
    lost_and_gained,
    pass_rate_regressed,
    reference_nll,
    suite_passes,
)
from tools.models import resolve_base  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8, help="sampled answers per item")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--scales", type=float, nargs="*", default=[0.005, 0.01],
                        help="relative weight-noise scales (none = skip the noise rows)")
    parser.add_argument("--seeds", type=int, default=3, help="noise draws per scale")
    parser.add_argument("--base", default=None, help="base model name or folder (default: the built-in one)")
    args = parser.parse_args()

    base = resolve_base(args.base)
    loaded = load_for_eval(base.path)
    model = loaded.model
    suite = load_suite()
    greedy = suite_passes(loaded, suite)
    counts = [0] * len(suite)
    for seed in range(args.samples):
        for index, passed in enumerate(suite_passes(loaded, suite, temperature=args.temperature, seed=seed)):
            counts[index] += passed
    print(f"{base.name}: {len(suite)} suite items, greedy vs {args.samples} samples at T={args.temperature}")
    for item, won, count in sorted(zip(suite, greedy, counts, strict=True), key=lambda t: (-t[2], t[0].id)):
        print(f"  {item.id:22s} greedy {'pass' if won else 'fail'}  sampled {count}/{args.samples}")
    edge = args.samples * 3 // 8
    fragile_pass = [i.id for i, won, c in zip(suite, greedy, counts, strict=True) if won and c <= edge]
    fragile_fail = [i.id for i, won, c in zip(suite, greedy, counts, strict=True) if not won and c > edge]
    print(f"greedy pass rate {sum(greedy) / len(suite):.0%}; sampled {sum(counts) / args.samples / len(suite):.0%}")
    print(f"knife-edge passes (greedy pass, at most {edge}/{args.samples} sampled): {len(fragile_pass)} of "
          f"{sum(greedy)}: {', '.join(fragile_pass) or '-'}")
    print(f"knife-edge failures (greedy fail, over {edge}/{args.samples} sampled): {len(fragile_fail)} of "
          f"{len(suite) - sum(greedy)}: {', '.join(fragile_fail) or '-'}")

    if not args.scales:
        return
    nll = reference_nll(loaded, suite)
    originals = {name: p.detach().clone() for name, p in model.named_parameters()
                 if p.dim() == 2 and "embed" not in name}
    print(f"weight noise on {len(originals)} matrices (reference NLL {nll:.3f}):")
    for scale in args.scales:
        for seed in range(args.seeds):
            generator = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if name in originals:
                        param.copy_(originals[name] * (1 + scale * torch.randn(param.shape, generator=generator)))
            lost, gained = lost_and_gained(suite, greedy, suite_passes(loaded, suite))
            flagged = pass_rate_regressed(len(lost), len(gained), len(suite))
            print(f"  scale {scale:<6} seed {seed}  NLL {reference_nll(loaded, suite) - nll:+.3f}  lost {len(lost)} "
                  f"gained {len(gained)}  {'REGRESSED' if flagged else 'ok':9s}  lost: {', '.join(lost) or '-'}")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in originals:
                param.copy_(originals[name])


if __name__ == "__main__":
    main()
