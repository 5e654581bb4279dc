"""Installs the privgan and fairness packages (experiments/ and benchmarks/ stay in the checkout)."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = "0.1.0"

setup(
    name="privgan",
    version=VERSION,
    description=(
        "Differentially private GANs, DP-SGD for Keras 3, privacy auditing and adversarial fairness "
        "on TensorFlow."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["privgan", "privgan.*", "fairness", "fairness.*"]),
    # The console entry points: outside `privgan`, so that they run before TensorFlow is imported.
    py_modules=["privgan_commands"],
    install_requires=[
        "tensorflow>=2.16,<3",
        "keras>=3.0,<4",
        "dp-accounting>=0.6,<0.7",
        "numpy>=1.26",
        "scipy>=1.11",
        "scikit-learn>=1.4",
        "absl-py>=2.0",
        "pandas>=2.0",
        "matplotlib>=3.7",
        "fairlearn>=0.10",
        # The junction trees of the marginal-based table synthesizers (AIM, MST).
        "networkx>=3.0",
    ],
    extras_require={
        # Private-PGM (mbi 2, Python >= 3.11) only checks that privgan's numpy estimator agrees with it.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", "mbi>=2.0,<3; python_version >= '3.11'"],
        "gpu": ["tensorflow[and-cuda]>=2.16,<3"],
        # Tables read from Parquet (pyarrow), or counted on a Dask cluster, by MarginalDPSynthesizer.fit.
        "parquet": ["pyarrow>=14"],
        "dask": ["dask[dataframe]>=2024.1"],
        # The documentation site (mkdocs.yml); mkdocstrings reads the docstrings without importing the code.
        "docs": ["mkdocs-material>=9.5", "mkdocstrings-python>=1.10"],
    },
    entry_points={
        "console_scripts": [
            "privgan-audit=privgan_commands:audit",
            "privgan-budget=privgan_commands:budget",
            "privgan-demo=privgan_commands:demo",
            "privgan-synthesize=privgan_commands:synthesize",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
