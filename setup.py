"""Packaging for lavis_ib: the library, plus its default configs and tiny assets shipped as package data."""

from setuptools import find_packages, setup

QUANT = ["bitsandbytes>=0.50.2", "accelerate>=1.15.0"]
LORA = ["peft>=0.21.2"]
DEMO = ["gradio>=6.31.0"]
REMOTE = ["aiohttp>=3.14.3"]

setup(
    name="lavis_ib",
    version="0.1.0",
    description="A LAVIS-style research framework for InstructBLIP / BLIP-2 vision-language models.",
    python_requires=">=3.10",
    packages=find_packages(include=["lavis_ib", "lavis_ib.*"]),
    include_package_data=True,
    package_data={"lavis_ib": ["configs/**/*.yaml", "assets/**/*"]},
    # Floors are the versions the test suite runs against: constraints.txt pins each of them at exactly its floor,
    # so `make test` (and CI) always checks the floor; tests/test_packaging.py keeps the two files equal.
    install_requires=[
        "torch>=2.14.1",
        "torchvision>=0.29.1",
        "timm>=1.0.31",
        "transformers>=5.23.0",
        "tokenizers>=0.23.3",
        "sentencepiece>=0.2.3",
        "protobuf>=7.36.2",
        "numpy>=2.4.6",
        "omegaconf>=2.4.0",
        "safetensors>=0.8.0",
        "pillow>=12.3.0",  # not 13: gradio 6.31 (the demo extra, and so dev) requires pillow<13
        "tqdm>=4.70.1",
        "tensorboard>=2.21.0",  # training logs (torch.utils.tensorboard writes the event files)
        "av>=18.1.0",
        "webdataset>=1.0.2",
        "fsspec>=2026.9.0",  # shard sets read from object stores and web servers (s3://, gs://, hf://, https://)
        "pycocoevalcap>=1.2",
    ],
    # quant: bitsandbytes quantizes the frozen LLM as transformers loads it, accelerate places it (model.quantization,
    # model.device_map); lora: peft's adapters (model.lora); demo: the page of `python run_demo.py`; remote: aiohttp,
    # fsspec's client for http(s):// shard sets (s3:// and gs:// need s3fs / gcsfs, which a user of those stores
    # installs). dev: everything, plus the test tools (sklearn: the ROC-AUC oracle; PyYAML: tests write configs; selenium drives Chromium in the
    # demo page's browser tests; 4.51, as 4.52 needs a certifi release the package index does not have yet).
    extras_require={
        "quant": QUANT,
        "lora": LORA,
        "demo": DEMO,
        "remote": REMOTE,
        "dev": [*QUANT, *LORA, *DEMO, *REMOTE, "pytest>=9.2.0", "pytest-timeout>=2.4.0", "scikit-learn>=1.9.1",
                "PyYAML>=6.0.4", "selenium>=4.51.0"],
    },
    entry_points={
        "console_scripts": [
            "lavis-ib-convert-data = lavis_ib.datasets.convert:main",
            "lavis-ib-convert-weights = lavis_ib.models.weights.convert_cli:main",
        ],
    },
)
