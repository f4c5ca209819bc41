"""The `kerasgen` command: argument parsing only; the work is done by library functions."""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out


def _parser():
    parser = argparse.ArgumentParser(
        prog="kerasgen", description="Train, sample and export kerasgen models.")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", help="list the registered models")

    train = commands.add_parser("train", help="train a model (resumes its --out folder)")
    train.add_argument("model", help="a registered model name (see `kerasgen list`)")
    train.add_argument("--dataset", help="dataset name, tfds:<name>, or a folder of images")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--steps-per-epoch", type=int)
    train.add_argument("--image-size", type=int, help="resize images to N x N")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--data-dir", help="folder with mnist/, fashion_mnist/ (default: "
                                          "$KERASGEN_DATA_DIR)")
    train.add_argument("--out", help="run folder (default: runs/<model>)")
    train.add_argument("--quantize", default="none", help="TFLite variant to export")
    train.add_argument("--sigma", type=float, help="restoration: training noise level (dncnn)")
    train.add_argument("--scale", type=int, help="super-resolution factor (2, 3 or 4)")

    sample = commands.add_parser(
        "sample", help="write a grid of samples from a run (VAEs: also reconstructions, "
                       "interpolation and, for 2-d latents, the manifold)")
    sample.add_argument("run_dir")
    sample.add_argument("--num", type=int, default=64)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", help="PNG path (default: RUN_DIR/sample.png); other figures "
                                      "go beside it")
    sample.add_argument("--data-dir", help="for the reference images of VAE figures")

    export = commands.add_parser("export", help="export a run as SavedModel or TFLite")
    export.add_argument("run_dir")
    export.add_argument("--format", required=True, choices=["saved_model", "tflite"])
    export.add_argument("--quantize", default="none",
                        choices=["none", "float16", "dynamic", "int8"])
    evaluate = commands.add_parser(
        "evaluate", help="FD / KID / classifier score of a run, a VAE's test NLL, or a "
                         "restoration model's PSNR/SSIM on a benchmark set (--dataset)")
    evaluate.add_argument("run_dir", help="run folder (restoration: or a shipped model name)")
    evaluate.add_argument("--dataset", help="restoration benchmark: BSD68, Set12, CBSD68, Set5 "
                                            "or Set14")
    evaluate.add_argument("--sigma", type=float, help="noise level (denoising benchmarks)")
    evaluate.add_argument("--scale", type=int, help="SR factor (default: the model's)")
    evaluate.add_argument("--metric", default="fd", choices=["fd", "kid", "score", "nll"])
    evaluate.add_argument("--num-samples", type=int, default=10000,
                          help="generated samples (fd, kid, score)")
    evaluate.add_argument("--k", type=int, default=5000, help="importance samples (nll)")
    evaluate.add_argument("--num-images", type=int,
                          help="first N test images (nll; default: all)")
    evaluate.add_argument("--reference", default="test", choices=["train", "test"])
    evaluate.add_argument("--features", default="domain", choices=["domain", "inception"])
    evaluate.add_argument("--classifier", help="domain classifier run folder (default: "
                                               "runs/classifier[_<dataset>])")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--seed", type=int, default=0)

    restore = commands.add_parser(
        "restore", help="denoise or super-resolve image files of any size")
    restore.add_argument("model", help="a run folder or a shipped model name (see "
                                       "saved_models/)")
    restore.add_argument("inputs", nargs="+", metavar="INPUT", help="PNG/JPEG/BMP files")
    restore.add_argument("--out", required=True, help="folder for the restored PNGs")
    restore.add_argument("--sigma", type=float, help="noise level of the inputs (FFDNet)")
    restore.add_argument("--scale", type=int, help="SR factor; must be the model's")
    restore.add_argument("--overwrite", action="store_true", help="replace existing outputs")

    translate = commands.add_parser(
        "translate", help="translate image files of any size (cyclegan, pix2pix)")
    translate.add_argument("model", help="a run folder (or a shipped model name)")
    translate.add_argument("inputs", nargs="+", metavar="INPUT", help="PNG/JPEG/BMP files")
    translate.add_argument("--direction", help="a2b or b2a for CycleGAN (default: a2b)")
    translate.add_argument("--out", required=True, help="folder for the translated PNGs")
    translate.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"kerasgen {args.command}: error: {error}", file=sys.stderr)
        return 2


def _model_with(load, path, method, refusal):
    """`load(path)`, refused with `refusal` unless the model has `method`."""
    model = load(path)
    if not hasattr(model, method):
        raise ValueError(f"{path} holds a {model.name!r} model, {refusal}.")
    return model


def _run(args):
    # Imported here so that `kerasgen --help` answers without loading TensorFlow.
    from kerasgen import registry, training

    if args.command == "list":
        for name in registry.available_models():
            print(f"{name:12s} {registry.get_preset(name).description}")
        return 0
    if args.command == "train":
        result = training.train(
            args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
            steps_per_epoch=args.steps_per_epoch, seed=args.seed, out_dir=args.out,
            image_size=args.image_size, data_dir=args.data_dir, quantize=args.quantize,
            model_options={"sigma": args.sigma, "scale": args.scale},
        )
        print("\n".join(result.summary()))
        return 0
    if args.command == "sample":
        model = _model_with(training.load_run, args.run_dir, "generate",
                            "which does not sample; use `kerasgen translate` or `kerasgen "
                            "restore` on image files")
        out = args.out or os.path.join(args.run_dir, "sample.png")
        print(training.write_samples(model, out, num_images=args.num, seed=args.seed))
        if hasattr(model, "figures"):
            figures = training.write_run_figures(args.run_dir, model, os.path.dirname(out) or ".",
                                                 data_dir=args.data_dir, seed=args.seed)
            for path in figures.values():
                print(path)
        return 0
    if args.command == "export":
        model = _model_with(training.load_run, args.run_dir, "serving_spec", "which has no export")
        name = model.name
        saved_model, tflite, report = training.export_model(
            model, args.run_dir, name, formats=(args.format,), quantize=args.quantize)
        if saved_model:
            print(f"SavedModel: {saved_model}")
        if tflite:
            print(f"TFLite: {tflite} ({report['size_bytes']} bytes, max |diff| vs Keras "
                  f"{report['max_abs_diff']:.0f} levels, mean {report['mean_abs_diff']:.2f}, "
                  f"{report['latency_ms']:.2f} ms/batch)")
        return 0
    if args.command == "restore":
        from kerasgen.models.restoration import restore_files

        model = _model_with(training.load_model, args.model, "restore", "not a restoration one")
        if args.scale is not None and args.scale != model.scale:
            raise ValueError(f"Unsupported scale {args.scale}: this model super-resolves "
                             f"x{model.scale}; train or pick a model for x{args.scale}.")
        for path in restore_files(model, args.inputs, args.out, sigma=args.sigma,
                                  overwrite=args.overwrite):
            print(path)
        return 0
    if args.command == "translate":
        from kerasgen.models.translation import translate_files

        model = _model_with(training.load_model, args.model, "translate",
                            "not a translation one (cyclegan, pix2pix)")
        for path in translate_files(model, args.inputs, args.out, direction=args.direction,
                                    overwrite=args.overwrite):
            print(path)
        return 0
    if args.command == "evaluate":
        from kerasgen import evaluation

        if args.dataset is not None:
            report = evaluation.evaluate_restoration(
                training.load_model(args.run_dir), args.dataset, sigma=args.sigma,
                scale=args.scale, data_dir=args.data_dir, seed=args.seed)
            print("\n".join(evaluation.restoration_table(report)))
            return 0
        if args.metric == "nll":
            report = evaluation.evaluate_likelihood(
                args.run_dir, num_importance_samples=args.k, num_images=args.num_images,
                data_dir=args.data_dir, seed=args.seed)
            print(f"test NLL (k={report['num_samples']}, {report['num_images']} "
                  f"{report['dataset']} test images): {report['nll']:.2f} nats   "
                  f"-ELBO: {report['negative_elbo']:.2f} nats   "
                  f"({report['bits_per_dim']:.4f} bits/dim)")
            return 0
        result = evaluation.evaluate_run(
            args.run_dir, metric=args.metric, num_samples=args.num_samples,
            reference=args.reference, feature_set=args.features, classifier_dir=args.classifier,
            data_dir=args.data_dir, seed=args.seed)
        label = {"fd": "Frechet distance", "kid": "KID", "score": "classifier score"}[args.metric]
        floor = "real test images" if args.metric == "score" else "real train vs test"
        print(f"{label} ({result['features']} features, {result['num_samples']} samples, "
              f"{result['dataset']} {result['reference']}): {result['value']:.4f}   "
              f"floor ({floor}): {result['floor']:.4f}")
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
