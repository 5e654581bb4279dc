r"""DPImageBench-style TSTR of saved synthetic image sets (one per seed), against MNIST's test split.

  python -m experiments.benchmark_tstr_images --data_dir=../shared/datasets/mnist \
      --synthetic=runs/dpgan_cpu_eps10_seed0/synthetic.npz,runs/dpgan_cpu_eps10_seed1/synthetic.npz,... \
      --epochs=15 --resnet_depth=20 --output_dir=runs/benchmark_tstr_eps10

Scores each `synthetic.npz` (`x` in [0, 1], `y`, as `experiments.dpgan_mnist` writes them) with
`privgan.evaluation.benchmark_tstr`: DPImageBench's classifier trained on the synthetic images, its epoch
chosen on a validation split carved from the synthetic set (never the test split), then measured on the real
test split; mean ± sample std over the files. Fewer epochs than their 50, or a shallower ResNet than their
110, is a shortened schedule and is recorded as such (`benchmark_tstr_shortened`).
"""

import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS


def _define_flags():
    flags.DEFINE_string("data_dir", None, "Folder with MNIST's IDX files; None downloads them.")
    flags.DEFINE_list("synthetic", None, "Comma-separated synthetic.npz files, one per seed.", required=True)
    flags.DEFINE_list("classifiers", ["resnet"], "Classifiers of the benchmark (resnet, wrn).")
    flags.DEFINE_integer("epochs", 15, "Training epochs of each classifier (DPImageBench: 50).", lower_bound=1)
    flags.DEFINE_integer("resnet_depth", 20, "ResNet depth, 6n + 2 (DPImageBench: 110).", lower_bound=8)
    flags.DEFINE_integer("wrn_depth", 40, "Wide ResNet depth (DPImageBench: 40).", lower_bound=10)
    flags.DEFINE_integer("seed", 0, "Seed of the classifiers' initialisation and shuffling.")
    flags.DEFINE_string("output_dir", "runs/benchmark_tstr_images", "Where results.json and report.md go.")


def main(argv):
    del argv
    from experiments.common.reporting import mean_and_std, write_experiment
    from privgan.data import load_mnist_unit_range
    from privgan.evaluation.benchmark_tstr import benchmark_tstr

    _, (x_test, y_test) = load_mnist_unit_range(FLAGS.data_dir)
    per_file = []
    for path in FLAGS.synthetic:
        with np.load(path, allow_pickle=False) as arrays:
            x, y = arrays["x"], arrays["y"]
        start = time.perf_counter()
        result = benchmark_tstr(x, y, x_test, y_test, num_classes=10, classifiers=FLAGS.classifiers,
                                epochs=FLAGS.epochs, seed=FLAGS.seed,
                                depths={"resnet": FLAGS.resnet_depth, "wrn": FLAGS.wrn_depth}).to_dict()
        per_file.append({"synthetic": path, **result, "seconds": round(time.perf_counter() - start, 1)})
        print(f"{path}: DPImageBench-style TSTR {result['benchmark_tstr_accuracy']:.4f}", flush=True)
    summary = mean_and_std(per_file, ["benchmark_tstr_accuracy", "seconds"])
    accuracy = summary["benchmark_tstr_accuracy"]
    print(f"mean ± std over {len(per_file)}: {accuracy['mean']:.4f} ± {accuracy['std']:.4f}", flush=True)
    write_experiment(
        FLAGS.output_dir, name="DPImageBench-style TSTR of synthetic MNIST sets",
        results={"per_file": per_file, "summary": summary,
                 "benchmark_tstr_shortened": any(r["benchmark_tstr_shortened"] for r in per_file)},
        summary=(f"Classifiers {', '.join(FLAGS.classifiers)} (ResNet depth {FLAGS.resnet_depth}), {FLAGS.epochs} "
                 "epochs, the epoch chosen on a validation split of each synthetic set, measured on MNIST's test "
                 f"split: **{accuracy['mean']:.4f} ± {accuracy['std']:.4f}** over {len(per_file)} sets."),
    )


if __name__ == "__main__":
    _define_flags()
    app.run(main)
