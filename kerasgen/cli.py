"""The `kerasgen` command: argument parsing only; the work is done by library functions.

Verbs: `list`, `train`, `sample`, `apply` (alias `restore`, `translate`), `evaluate`, `export`.
A model's own options are not written here: `train MODEL` takes the flags of the model's
builder (`ModelPreset.options()`, e.g. `--sigma`, `--scale`, `--latent-dim`), and `sample`,
`apply` and `evaluate` take those of the loaded model's contract methods (`generate`, `apply`,
`benchmark`; e.g. `--num-steps`, `--sigma`, `--direction`). `--help` after a model or run lists
them.
Which verb applies, and how, follows from the model's task (`kerasgen.tasks`).
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out

APPLY_ALIASES = ("restore", "translate")
# kerasgen.export.QUANTIZATIONS, written here so that parsing needs no TensorFlow.
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
from kerasgen.precision import PRECISIONS  # noqa: E402 (no TensorFlow)
from kerasgen import MissingTensorFlow  # noqa: E402 (no TensorFlow)
from kerasgen.cluster import STRATEGIES  # noqa: E402 (no TensorFlow)


def whole_number(minimum):
    """An argparse type: a whole number of at least `minimum` (0 is never "unset")."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


positive_int = whole_number(1)
non_negative_int = whole_number(0)  # seeds


def _parser():
    parser = argparse.ArgumentParser(
        prog="kerasgen", description="Train, sample, apply, evaluate and export kerasgen models.")
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="list the registered models and the shipped "
                                               "(trained) ones")
    listing.add_argument("--pretrained", action="store_true",
                         help="list only the shipped, trained models")

    train = commands.add_parser(
        "train", add_help=False,
        help="train a model (resumes its --out folder); `kerasgen train MODEL --help` lists "
             "the model's own options")
    train.add_argument("model", nargs="?", help="a registered model name (see `kerasgen list`)")
    _add_help(train)
    train.add_argument("--dataset", help="dataset name, tfds:<name>, or a folder of images")
    train.add_argument("--epochs", type=positive_int)
    train.add_argument("--batch-size", type=positive_int)
    train.add_argument("--steps-per-epoch", type=positive_int)
    train.add_argument("--image-size", type=positive_int,
                       help="resize (or crop) images to N x N, for models sized from their "
                            "training images")
    train.add_argument("--seed", type=non_negative_int, default=0)
    train.add_argument("--data-dir", help="folder with mnist/, fashion_mnist/ (default: "
                                          "$KERASGEN_DATA_DIR)")
    train.add_argument("--out", help="run folder (default: runs/<model>)")
    train.add_argument("--quantize", default="none", choices=QUANTIZATIONS,
                       help="TFLite variant to export")
    train.add_argument("--strategy", default="none", choices=STRATEGIES,
                       help="tf.distribute strategy: none (one device), mirrored (all local "
                            "GPUs), multi_worker (the cluster in $TF_CONFIG; run the same "
                            "command on every worker)")

    train.add_argument("--precision", default="auto", choices=PRECISIONS,
                       help="float32, or bf16 (bfloat16 compute, float32 weights; exports stay "
                            "float32); auto (default): bf16 on a GPU that computes it natively, "
                            "and on a CPU with AVX512-BF16 or AMX only if a one-off probe finds "
                            "it faster; else float32. A resumed run keeps its own")
    train.add_argument("--init", metavar="NAME|RUN",
                       help="fine-tune: start a new run from the weights of a shipped model "
                            "(kerasgen list --pretrained) or a run folder of the same model")

    sample = commands.add_parser(
        "sample", add_help=False,
        usage="kerasgen sample RUN_DIR|SHIPPED [--num N] [--seed N] [--out PNG] [--data-dir DIR] "
              "[the model's options] [-h]",
        help="write a grid of samples from a generative run (VAEs: also "
             "reconstructions, interpolation and, for 2-d latents, the manifold; "
             "forecasters: test sequences continued, as a PNG and a GIF); "
             "the model's sampling options (e.g. a diffusion model's --num-steps) "
             "follow; `kerasgen sample RUN --help` lists them")
    sample.add_argument("run_dir", nargs="?",
                        help="a run folder or a shipped generative model's name "
                             "(e.g. cgan_mnist; see `kerasgen list --pretrained`)")
    _add_help(sample)
    sample.add_argument("--num", type=positive_int,
                        help="samples (default 64), or sequences a forecaster continues "
                             "(default 8)")
    sample.add_argument("--seed", type=non_negative_int, default=0)
    sample.add_argument("--out", help="PNG path (default: RUN_DIR/sample.png, or "
                                      "NAME_sample.png for a shipped model); other figures "
                                      "go beside it, and models that draw in steps (DRAW) "
                                      "write the animation as a GIF of the same name")
    sample.add_argument("--data-dir", help="for the reference images of VAE figures and a "
                                           "forecaster's test digits")

    apply = commands.add_parser(
        "apply", aliases=list(APPLY_ALIASES), add_help=False,
        usage="kerasgen apply RUN_DIR|SHIPPED INPUT... --out DIR [--overwrite] "
              "[the model's options] [-h]",
        help="apply an image-to-image model (denoise, super-resolve, translate) to image files "
             "of any size; the model's options (e.g. --sigma, --scale, --direction) follow; "
             "`kerasgen apply MODEL --help` lists them")
    apply.add_argument("model", nargs="?",
                       help="a run folder or a shipped model name (see saved_models/)")
    apply.add_argument("inputs", nargs="*", metavar="INPUT", help="PNG/JPEG/BMP files")
    # Required unless --help asks for the model's options (checked in `main`).
    apply.add_argument("--out", help="folder for the output PNGs (required)")
    apply.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _add_help(apply)

    export = commands.add_parser("export", help="export a run as SavedModel or TFLite")
    export.add_argument("run_dir")
    export.add_argument("--format", required=True, choices=["saved_model", "tflite"])
    export.add_argument("--quantize", default="none", choices=QUANTIZATIONS)

    evaluate = commands.add_parser(
        "evaluate", add_help=False,
        usage="kerasgen evaluate RUN_DIR|SHIPPED [--dataset SET] [--metric M] [...] "
              "[the model's options] [-h]",
        help="generative runs: FD / KID / classifier score or a VAE's test NLL; "
             "image-to-image models: their benchmark on --dataset (e.g. PSNR/SSIM); "
             "forecasters: per-frame MSE / SSIM on generated Moving MNIST test "
             "sequences (--num-sequences N); classifiers: test accuracy; the model's "
             "options follow (`kerasgen evaluate RUN --help` lists them)")
    evaluate.add_argument("run_dir", nargs="?",
                          help="run folder (image-to-image: or a shipped model name)")
    _add_help(evaluate)
    evaluate.add_argument("--dataset", help="image-to-image benchmark set, e.g. BSD68, Set12, "
                                            "CBSD68, Set5, Set14 (forecasters: the digits "
                                            "to move; default: the run's)")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--seed", type=non_negative_int, default=0)
    generation = evaluate.add_argument_group("generative runs")
    generation.add_argument("--metric", default="fd", choices=["fd", "kid", "score", "nll"])
    generation.add_argument("--num-samples", type=positive_int, default=10000,
                            help="generated samples (fd, kid, score)")
    generation.add_argument("--k", type=int,
                            help="importance samples (nll of latent-variable models; default: "
                                 "the model's, 5000 for VAEs, 100 for DRAW; exact models "
                                 "ignore it)")
    generation.add_argument("--num-images", type=positive_int,
                            help="first N test images (nll; default: all)")
    generation.add_argument("--reference", default="test", choices=["train", "test"])
    generation.add_argument("--features", default="domain", choices=["domain", "inception"])
    generation.add_argument("--classifier", help="domain classifier run folder (default: "
                                                 "runs/classifier[_<dataset>])")
    # The subcommands whose target (a model name, run folder or shipped model) has options of
    # its own: `--help` lists them once the target is named.
    parser.target_parsers = {"train": (train, "model"), "sample": (sample, "run_dir"),
                             "apply": (apply, "model"), "evaluate": (evaluate, "run_dir")}
    return parser


def _add_help(subparser):
    subparser.add_argument("-h", "--help", action="store_true",
                           help="show this help and, after a model or run, the model's own "
                                "options")


def _parse_bool(text):
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def option_parser(prog, options, what):
    """A parser of `--name value` flags for `{name: kerasgen.models.preset.Option}`; options
    without a CLI type (e.g. tuples) are left to the Python API."""
    parser = argparse.ArgumentParser(prog=prog, add_help=False, description=what)
    for option in options.values():
        if option.type is not None:
            parser.add_argument(option.flag, dest=option.name, default=None,
                                type=_parse_bool if option.type is bool else option.type,
                                help=f"default: {option.default}")
    return parser


def _parse_options(prog, options, extra, what):
    """`{name: value}` of the flags in `extra` (None where not given); unknown flags are
    refused with the valid ones."""
    parser = option_parser(prog, options, what)
    values, unknown = parser.parse_known_args(extra)
    if unknown:
        names = [arg.lstrip("-").replace("-", "_") for arg in unknown if arg.startswith("-")]
        valid = " ".join(f"{option.flag} {option.type.__name__.upper()}"
                         for option in options.values() if option.type is not None)
        raise ValueError(f"{what} takes no {', '.join(names) or ' '.join(unknown)} option; its "
                         f"options: {valid or 'none'}.")
    return {name: value for name, value in vars(values).items() if value is not None}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command in APPLY_ALIASES:
        args.command = "apply"
    if extra and args.command not in ("train", "apply", "evaluate", "sample"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    command_parser, target = parser.target_parsers.get(args.command, (None, None))
    if command_parser is not None:
        if args.help or getattr(args, target) is None:
            command_parser.print_help()
            if getattr(args, target) is None:
                return 0 if args.help else 2
        elif args.command == "apply" and not (args.inputs and args.out):
            command_parser.error("the following arguments are required: "
                                 + ", ".join(name for name, given in (("INPUT", args.inputs),
                                                                      ("--out", args.out))
                                             if not given))
    try:
        return _run(args, extra)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"kerasgen {args.command}: error: {error}", file=sys.stderr)
        return 2
    except MissingTensorFlow as error:  # it names the extras to install
        print(f"kerasgen {args.command}: error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `kerasgen list | head`: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _model_for(load, path, verb):
    """`load(path)` and its task, refused unless the task's verb is `verb`."""
    from kerasgen.tasks import task_of

    model = load(path)
    task = task_of(model)
    if task.verb != verb:
        other = f"use `kerasgen {task.verb}`" if task.verb else "it has no such verb"
        raise ValueError(f"{path} holds a {model.name!r} model, which does not {verb} "
                         f"({task.name.replace('_', '-')} task); {other}.")
    return model


def _list_shipped(store):
    print("shipped models (kerasgen apply|evaluate|sample NAME; saved_models/):")
    rows = [store.describe_shipped(name) for name in store.shipped_models()]
    # Every column as wide as its longest entry.
    widths = {key: max((len(str(row[key])) for row in rows), default=0)
              for key in ("name", "task", "model", "data")}
    for row in rows:
        print(f"  {row['name']:{widths['name']}s} {row['task']:{widths['task']}s} "
              f"{row['model']:{widths['model']}s} data: {row['data']:{widths['data']}s} "
              f"{row['figure']}")
    return 0


def _print_options(title, options):
    """`--help`'s second part: a model's own options (`{name: Option}`), after the command's."""
    print(f"\n{title}")
    for option in options.values():
        if option.type is not None:
            usage = f"{option.flag} {option.type.__name__.upper()}"
            print(f"  {usage:26s} default: {option.default}")
    if not any(option.type is not None for option in options.values()):
        print("  none")
    return 0


def _model_help(preset):
    """The model's own options, after the common ones of `kerasgen train --help`."""
    return _print_options(f"{preset.name}: {preset.description}\nmodel options (the builder's "
                          "defaults, with the preset's overrides):", preset.options())


def _loaded_help(verb, source, options):
    return _print_options(f"options of `kerasgen {verb} {source}` (its model's own):", options)


def _list_registered(listing):
    width = max([12] + [len(entry["name"]) for entry in listing])
    for entry in listing:
        print(f"{entry['name']:{width}s} {entry['task']:15s} {entry['description']}")
    print()


def _run(args, extra):
    from kerasgen import cluster, model_index, store

    # Answered from files, without TensorFlow: the shipped models' cards, and the registry's
    # listing as cached by the last command that imported it (`kerasgen.model_index`). A
    # process that has the registry already (Python callers, who may `register` models) asks
    # it instead.
    cached = args.command in ("list", "train") and not getattr(args, "pretrained", False) \
        and "kerasgen.registry" not in sys.modules
    listing = model_index.read() if cached else None
    if args.command == "list" and (args.pretrained or listing is not None):
        if not args.pretrained:
            _list_registered(listing)
        return _list_shipped(store)
    if args.command == "train" and args.strategy == "multi_worker":
        cluster.read_tf_config()
    if args.command == "train" and listing is not None:
        names = [entry["name"] for entry in listing]
        if args.model not in names:
            raise model_index.unknown_model(args.model, names)
    # Imported here, after parsing, so that `kerasgen --help` and argument errors answer
    # without loading TensorFlow.
    import kerasgen

    kerasgen._import_tensorflow_quietly()
    from kerasgen import distribute

    # Before any TensorFlow op: a multi-worker strategy configures the collectives first.
    strategy = distribute.make_strategy(args.strategy) if args.command == "train" else None
    from kerasgen import registry, tasks, training

    model_index.write(registry.MODELS)
    if args.command == "list":
        _list_registered(model_index.entries(registry.MODELS))
        return _list_shipped(store)
    if args.command == "train":
        preset = registry.get_preset(args.model)
        if args.help:
            return _model_help(preset)
        options = _parse_options(f"kerasgen train {args.model}", preset.options(), extra,
                                 args.model)
        result = training.train(
            args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
            steps_per_epoch=args.steps_per_epoch, seed=args.seed, out_dir=args.out,
            image_size=args.image_size, data_dir=args.data_dir, quantize=args.quantize,
            model_options=options, strategy=strategy, precision=args.precision,
            init_from=args.init,
        )
        print("\n".join(result.summary()))
        return 0
    if args.command == "sample":
        model = _model_for(store.load_model, args.run_dir, "sample")
        task = tasks.task_of(model)
        if args.help:
            return _loaded_help("sample", args.run_dir, task.sample_options(model))
        options = _parse_options("kerasgen sample", task.sample_options(model), extra,
                                 f"Sampling a {model.name!r} model")
        # A run's samples go into its folder; a shipped model's into the current one.
        out = args.out or (os.path.join(args.run_dir, "sample.png") if os.path.isdir(args.run_dir)
                           else f"{os.path.basename(args.run_dir)}_sample.png")
        for path in task.sample_files(model, args.run_dir, out, args.num or task.default_samples,
                                      seed=args.seed, data_dir=args.data_dir, **options):
            print(path)
        return 0
    if args.command == "export":
        model = training.load_run(args.run_dir)
        if not tasks.task_of(model).exports:
            raise ValueError(f"{args.run_dir} holds a {model.name!r} model, which has no export.")
        saved_model, tflite, report = training.export_model(
            model, args.run_dir, model.name, formats=(args.format,), quantize=args.quantize)
        if saved_model:
            print(f"SavedModel: {saved_model}")
        if tflite:
            print(f"TFLite: {tflite} ({report['size_bytes']} bytes, max |diff| vs Keras "
                  f"{report['max_abs_diff']:.0f} levels, mean {report['mean_abs_diff']:.2f}, "
                  f"{report['latency_ms']:.2f} ms/batch)")
        return 0
    if args.command == "apply":
        model = _model_for(store.load_model, args.model, "apply")
        if args.help:
            return _loaded_help("apply", args.model, tasks.method_options(model.apply))
        options = _parse_options("kerasgen apply", tasks.method_options(model.apply), extra,
                                 f"A {model.name!r} model")
        tasks.apply_files(model, args.inputs, args.out, overwrite=args.overwrite,
                          on_written=lambda path: print(path, flush=True), **options)
        return 0
    if args.command == "evaluate":
        return _evaluate(args, extra)
    raise AssertionError(args.command)


def _evaluate(args, extra):
    from kerasgen import evaluation, store, tasks, training

    if args.dataset is None and os.path.isdir(args.run_dir):
        training.read_run_config(args.run_dir)  # a run folder, not just any folder
    model = store.load_model(args.run_dir)
    task = tasks.task_of(model)
    # The contract method whose keyword options the command takes, if any.
    method = (model.benchmark if task in (tasks.IMAGE_TO_IMAGE, tasks.FORECASTING)
              else model.generate if task is tasks.GENERATION and args.metric != "nll"
              else None)
    if args.help:
        return _loaded_help("evaluate", args.run_dir,
                            tasks.method_options(method) if method is not None else {})
    if method is not None:
        options = _parse_options("kerasgen evaluate", tasks.method_options(method), extra,
                                 f"Evaluating a {model.name!r} model")
    elif extra:
        raise ValueError(f"Evaluating a {model.name!r} model takes no {' '.join(extra)}.")
    if task is tasks.IMAGE_TO_IMAGE:
        if args.dataset is None:
            raise ValueError("Image-to-image models are evaluated on a benchmark set: pass "
                             "--dataset (e.g. BSD68, Set12, CBSD68, Set5, Set14).")
        report = model.benchmark(args.dataset, data_dir=args.data_dir, seed=args.seed,
                                 **options)
        print("\n".join(report["lines"]))
        return 0
    if task is tasks.FORECASTING:
        report = model.benchmark(args.dataset or tasks.run_dataset(args.run_dir),
                                 data_dir=args.data_dir, seed=args.seed, **options)
        print("\n".join(report["lines"]))
        return 0
    if args.dataset is not None:
        raise ValueError(f"--dataset names an image-to-image benchmark set; a {task.name} run "
                         "is evaluated on the data it was trained on.")
    if task is tasks.CLASSIFICATION:
        report = tasks.evaluate_classifier(model, training.read_run_config(args.run_dir),
                                           args.data_dir)
        print(", ".join(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
                        for key, value in report.items()))
        return 0
    if args.metric == "nll":
        report = evaluation.evaluate_likelihood(
            args.run_dir, num_importance_samples=args.k, num_images=args.num_images,
            data_dir=args.data_dir, seed=args.seed)
        estimate = "exact" if report.get("exact") else f"k={report['num_samples']}"
        bound = "" if report.get("exact") else f"-ELBO: {report['negative_elbo']:.2f} nats   "
        print(f"test NLL ({estimate}, {report['num_images']} {report['dataset']} test images): "
              f"{report['nll']:.2f} nats   {bound}({report['bits_per_dim']:.4f} bits/dim)")
        return 0
    result = evaluation.evaluate_run(
        args.run_dir, metric=args.metric, num_samples=args.num_samples,
        reference=args.reference, feature_set=args.features, classifier_dir=args.classifier,
        data_dir=args.data_dir, seed=args.seed, generate_options=options)
    label = {"fd": "Frechet distance", "kid": "KID", "score": "classifier score"}[args.metric]
    floor = "real test images" if args.metric == "score" else "real train vs test"
    print(f"{label} ({result['features']} features, {result['num_samples']} samples, "
          f"{result['dataset']} {result['reference']}): {result['value']:.4f}   "
          f"floor ({floor}): {result['floor']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
