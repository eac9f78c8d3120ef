"""Write the shipped samples in gtools/datasets/data/ (run by hand: ``python -m gtools.datasets._make_samples``).

* ``sepsis.csv.gz``: ``sepsis.simulate(sepsis.SAMPLE_N, sepsis.SAMPLE_SEED)``;
* ``oncology.csv.gz``: ``oncology.simulate(oncology.SAMPLE_N, oncology.SAMPLE_SEED)``;
* ``oncology_qol.csv.gz``: ``oncology.oncology_qol(oncology.QOL_SAMPLE_N, oncology.QOL_SAMPLE_SEED)``.

Floats are rounded to 4 decimals and gzip's timestamp is fixed, so rerunning
gives byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

from gtools.datasets import oncology, sepsis

DATA = Path(__file__).resolve().parent / "data"


def _write(df, name: str) -> Path:
    DATA.mkdir(exist_ok=True)
    path = DATA / name
    df = df.round(4)
    for col in ("death", "progression"):  # 0/1 with NaN after censoring: write as 0, 1 or empty
        if col in df.columns:
            df[col] = df[col].astype("Int64")
    df.to_csv(path, index=False, compression={"method": "gzip", "mtime": 0, "compresslevel": 9})
    return path


def main() -> None:
    outputs = [
        _write(sepsis.simulate(sepsis.SAMPLE_N, sepsis.SAMPLE_SEED), "sepsis.csv.gz"),
        _write(oncology.simulate(oncology.SAMPLE_N, oncology.SAMPLE_SEED), "oncology.csv.gz"),
        _write(oncology.oncology_qol(oncology.QOL_SAMPLE_N, oncology.QOL_SAMPLE_SEED), "oncology_qol.csv.gz"),
    ]
    for p in outputs:
        print(f"{p}: {p.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
