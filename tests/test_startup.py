"""Start-up cost: `import lavis_ib` and the dataset converter CLI load neither torch nor transformers (nor timm or
torchvision); the public API names still resolve, on first use."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ("torch", "torchvision", "transformers", "timm")

# Runs the converter CLI's --help in-process, then reports which heavy packages got imported.
CONVERT_HELP = textwrap.dedent(
    """
    import contextlib, io, json, runpy, sys
    sys.argv = ["convert", "--help"]
    with contextlib.redirect_stdout(io.StringIO()) as help_text:
        try:
            runpy.run_module("lavis_ib.datasets.convert", run_name="__main__")
        except SystemExit as done:
            code = done.code
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in {heavy})
    print(json.dumps({{"code": code, "help": help_text.getvalue(), "loaded": loaded}}))
    """
).format(heavy=set(HEAVY))


def run_python(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_convert_cli_help_imports_no_torch_or_transformers():
    report = run_python(CONVERT_HELP)
    assert report["code"] == 0 and "--src SRC" in report["help"] and "msvd_qa" in report["help"]
    assert report["loaded"] == []


def test_importing_the_package_and_the_converters_stays_light():
    report = run_python(
        "import json, sys\n"
        "import lavis_ib, lavis_ib.datasets.convert\n"
        "from lavis_ib.datasets.converters import get_converter, list_converters\n"
        "names = list_converters(); get_converter('vsr')\n"
        f"print(json.dumps({{'n': len(names), 'loaded': sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)})}}))"
    )
    assert report == {"n": 34, "loaded": []}  # the 26 paper datasets and the 8 synthetic-world tasks


def test_public_api_names_resolve_lazily():
    import lavis_ib
    from lavis_ib import Config, dataset_zoo, load_dataset, load_model_and_preprocess, model_zoo, registry

    assert "vsr" in dataset_zoo and callable(load_dataset) and callable(load_model_and_preprocess)
    assert "blip2_vicuna_instruct" in str(model_zoo) and Config.__name__ == "Config"
    assert registry.get_model_class("blip2_opt").__name__ and set(lavis_ib.__all__) <= set(dir(lavis_ib))


def test_unknown_attribute_names_the_package():
    import lavis_ib

    try:
        lavis_ib.load_modle  # noqa: B018
    except AttributeError as error:
        assert str(error) == "module 'lavis_ib' has no attribute 'load_modle'"
    else:
        raise AssertionError("lavis_ib.load_modle resolved")


def test_a_model_without_adapters_or_quantization_imports_neither_peft_nor_bitsandbytes():
    """peft imports bitsandbytes (about a second of start-up, and a warning on CPU): a model that uses neither, in
    eval and in train mode, must not import them; one with `lora` does."""
    code = textwrap.dedent(
        """
        import json, sys
        from lavis_ib import load_model
        model = load_model("blip2_vicuna_instruct", "tiny").train()
        plain = sorted(m for m in ("peft", "bitsandbytes") if m in sys.modules)
        load_model("blip2_vicuna_instruct", "tiny", lora={"r": 2})
        print(json.dumps({"plain": plain, "lora": "peft" in sys.modules}))
        """
    )
    assert run_python(code) == {"plain": [], "lora": True}
