"""
Checkpoints as directories, written atomically and verified on load.

    <dir>/config.json          the DiT4DiTConfig
    <dir>/model.safetensors    trainable weights (video transformer + action DiT)
    <dir>/normalization.json   the Normalizer (statistics and layout)
    <dir>/manifest.json        format version, byte size and sha256 of each file, extra metadata

A directory is written under a temporary name and renamed into place, so a crash never leaves a
half-written checkpoint under the real name. Loading refuses, with a message naming the problem, a
directory without a manifest, a missing or truncated file, a checksum mismatch, or weights whose
names or shapes do not match the configuration.
"""

import hashlib
import json
import os
from pathlib import Path
import shutil
import tempfile
import time

from .config import ConfigError, DiT4DiTConfig
from .normalization import NormalizationError, Normalizer

FORMAT = 'dit4dit_ros/checkpoint/v1'
FILES = ('config.json', 'model.safetensors', 'normalization.json')
HASH_LIMIT = 2 * 1024 ** 3  # larger files are checked by size only (hashing 8 GB takes a while)


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, incomplete, corrupt or does not fit its configuration."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _write(path: Path, data: bytes):
    with open(path, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(path, model, normalizer: Normalizer, extra=None, dtype=None) -> Path:
    """
    Write ``model`` and ``normalizer`` to the directory ``path`` atomically; return it.

    ``dtype`` (e.g. ``torch.float16``) stores floating-point weights in that type (half the
    bytes: shipped demo checkpoints); loading casts them back to the model's type.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{path.name}.tmp-', dir=path.parent))
    try:
        _write(tmp / 'config.json', (json.dumps(model.config.to_dict(), indent=2) + '\n').encode())
        _write(tmp / 'normalization.json', normalizer.dumps().encode())
        weights = model.trainable_state_dict()
        tensors = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
        if dtype is not None:
            tensors = {k: v.to(dtype) if v.is_floating_point() else v
                       for k, v in tensors.items()}
        save_file(tensors, str(tmp / 'model.safetensors'), metadata={'format': FORMAT})
        with open(tmp / 'model.safetensors', 'rb+') as f:
            os.fsync(f.fileno())
        manifest = {
            'format': FORMAT, 'created': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            'files': {name: {'bytes': (tmp / name).stat().st_size, 'sha256': _sha256(tmp / name)}
                      for name in FILES},
            'num_tensors': len(tensors), 'extra': extra or {},
        }
        _write(tmp / 'manifest.json', (json.dumps(manifest, indent=2) + '\n').encode())
        old = None
        if path.exists():
            old = path.with_name(f'.{path.name}.old-{os.getpid()}')
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def verify_checkpoint(path) -> dict:
    """Check a checkpoint directory's files against its manifest; return the manifest."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f'{path}: no such checkpoint directory')
    manifest_path = path / 'manifest.json'
    if not manifest_path.is_file():
        raise CheckpointError(f'{path}: manifest.json is missing (not a checkpoint directory, or '
                              'an interrupted save)')
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f'{manifest_path}: unreadable ({exc})') from exc
    if manifest.get('format') != FORMAT:
        raise CheckpointError(f'{path}: format {manifest.get("format")!r}, expected {FORMAT!r}')
    for name in FILES:
        file = path / name
        want = manifest.get('files', {}).get(name)
        if want is None:
            raise CheckpointError(f'{path}: manifest does not list {name}')
        if not file.is_file():
            raise CheckpointError(f'{path}: {name} is missing')
        size = file.stat().st_size
        if size != want['bytes']:
            raise CheckpointError(f'{file}: {size} bytes, manifest says {want["bytes"]} '
                                  f'({"truncated" if size < want["bytes"] else "altered"})')
        if size <= HASH_LIMIT and _sha256(file) != want['sha256']:
            raise CheckpointError(f'{file}: sha256 does not match the manifest (corrupt or '
                                  'altered)')
    return manifest


def read_normalizer(path) -> Normalizer:
    """Return a verified checkpoint's normalisation (action and state names, ranges) only."""
    verify_checkpoint(path)
    return Normalizer.from_dict(json.loads((Path(path) / 'normalization.json').read_text()))


def load_checkpoint(path, device='cpu', model_factory=None):
    """
    Return (model, normalizer, manifest) from a verified checkpoint directory.

    ``model_factory(config)`` builds the model (default: ``DiT4DiT(config)``, the codec and any
    pretrained parts coming from the paths in the configuration).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    manifest = verify_checkpoint(path)
    try:
        config = DiT4DiTConfig.from_dict(json.loads((path / 'config.json').read_text()))
    except (ConfigError, json.JSONDecodeError) as exc:
        raise CheckpointError(f'{path / "config.json"}: {exc}') from exc
    try:
        normalizer = Normalizer.from_dict(json.loads((path / 'normalization.json').read_text()))
    except (NormalizationError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f'{path / "normalization.json"}: {exc}') from exc
    if (normalizer.action_dim, normalizer.state_dim) != (config.action.action_dim,
                                                         config.action.state_dim):
        raise CheckpointError(f'{path}: normalisation is for action/state widths '
                              f'{normalizer.action_dim}/{normalizer.state_dim}, the model has '
                              f'{config.action.action_dim}/{config.action.state_dim}')
    if model_factory is None:
        from .dit4dit import DiT4DiT

        def model_factory(cfg):
            return DiT4DiT(cfg, pretrained=False)   # the weights come from the checkpoint
    model = model_factory(config)
    try:
        tensors = load_file(str(path / 'model.safetensors'), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f'{path / "model.safetensors"}: unreadable ({exc})') from exc
    expected = model.trainable_state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors)
                   if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        lines = [f'{path}: weights do not match the configuration']
        if missing:
            more = ' ...' if len(missing) > 8 else ''
            lines.append(f'  missing: {", ".join(missing[:8])}{more}')
        if unexpected:
            lines.append(f'  unexpected: {", ".join(unexpected[:8])}')
        lines += [f'  shape mismatch: {k} {tuple(tensors[k].shape)} vs {tuple(expected[k].shape)}'
                  for k in wrong[:8]]
        raise CheckpointError('\n'.join(lines))
    model.load_state_dict(tensors, strict=False)
    return model.to(device).eval(), normalizer, manifest


def export_checkpoint(source, destination, dtype=None, extra=None) -> Path:
    """
    Copy a verified checkpoint to ``destination``, its weights stored as ``dtype``.

    ``extra`` entries are added to (or replace) the manifest's metadata, e.g. the provenance of
    a shipped checkpoint in place of the training machine's dataset path.
    """
    model, normalizer, manifest = load_checkpoint(source)
    metadata = {**manifest.get('extra', {}), **(extra or {})}
    return save_checkpoint(destination, model, normalizer, extra=metadata, dtype=dtype)


def _key_value(item):
    import yaml

    key, sep, value = item.partition('=')
    if not sep or not key.strip():
        raise ValueError(f'--extra {item!r} must look like key=value')
    return key.strip(), yaml.safe_load(value)


def main(argv=None):
    """``python -m dit4dit_policy.model.checkpoint SRC DST [--half] [--extra K=V]``: export."""
    import argparse

    import torch

    parser = argparse.ArgumentParser(description='Copy a checkpoint, optionally in float16.')
    parser.add_argument('source')
    parser.add_argument('destination')
    parser.add_argument('--half', action='store_true', help='store the weights as float16')
    parser.add_argument('--extra', action='append', default=[], metavar='KEY=VALUE',
                        help='manifest metadata to add or replace (value parsed as YAML)')
    args = parser.parse_args(argv)
    try:
        extra = dict(_key_value(item) for item in args.extra)
    except ValueError as exc:
        parser.error(str(exc))
    out = export_checkpoint(args.source, args.destination,
                            dtype=torch.float16 if args.half else None, extra=extra)
    size = (out / 'model.safetensors').stat().st_size
    print(f'exported {args.source} -> {out} ({size / 2 ** 20:.1f} MiB of weights)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
