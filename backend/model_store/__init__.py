"""The model manager: what the user can run, getting the published models, importing folders.

Not to be confused with :mod:`backend.model` (the networks). This package lists the models a
user can run (the bundled default, the published RS2-SAM 2 folders, the user's own checkpoint
files), downloads a published folder with ``huggingface_hub`` (resumable, verified), imports it
with ``import-official`` and records it. Download sources register themselves
(:mod:`.sources`): ``hub`` (:mod:`.hub`) and ``folder`` (:mod:`.folder`).

Modules (importing this package loads none of them, nor torch):

* ``errors``: :class:`~.errors.DownloadError`;
* ``progress``: byte counts, rate and time left for the CLI and the QGIS task;
* ``sources``: the source registry and the plan of a download (files, sizes, hashes, licence);
* ``hub``: the Hugging Face Hub source (honours ``HF_ENDPOINT``, ``HF_HOME``, proxy variables);
* ``folder``: a folder the user already has (offline machines, mirrors);
* ``catalogue``: the published models and the models folder's records;
* ``jobs``: a prepared get (sizes, free space, licence) and what it installed;
* ``manager``: list, get, import, remove;
* ``cli``: ``python -m backend models ...``.
"""

from __future__ import annotations
