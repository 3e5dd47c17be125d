"""Packaging for lavis_ib: the library, plus its default configs and tiny assets shipped as package data."""

from setuptools import find_packages, setup

setup(
    name="lavis_ib",
    version="0.1.0",
    description="A LAVIS-style research framework for InstructBLIP / BLIP-2 vision-language models.",
    python_requires=">=3.10",
    packages=find_packages(include=["lavis_ib", "lavis_ib.*"]),
    include_package_data=True,
    package_data={"lavis_ib": ["configs/**/*.yaml", "assets/**/*"]},
    install_requires=[
        "torch>=2.4",
        "torchvision",
        "timm>=1.0",
        "transformers>=4.46",
        "sentencepiece",
        "protobuf",
        "omegaconf>=2.3",
        "safetensors",
        "pillow",
        "tqdm",
        "tensorboard",  # training logs (torch.utils.tensorboard writes the event files)
        "av",
        "webdataset",
        "pycocoevalcap",
    ],
    extras_require={"dev": ["pytest", "pytest-timeout", "scikit-learn"]},  # sklearn: the ROC-AUC oracle in tests
    entry_points={
        "console_scripts": [
            "lavis-ib-convert-data = lavis_ib.datasets.convert:main",
            "lavis-ib-convert-weights = lavis_ib.models.convert_cli:main",
        ],
    },
)
