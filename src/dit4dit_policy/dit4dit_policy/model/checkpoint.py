"""
Checkpoints as directories, written atomically and verified on load.

    <dir>/config.json          the DiT4DiTConfig
    <dir>/model.safetensors    trainable weights (video transformer + action DiT)
    <dir>/normalization.json   the Normalizer (statistics and layout)
    <dir>/contract.json        the policy contract: fps, state/action joints, cameras
                               (``dit4dit_policy.contract``)
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
from ..contract import ContractError, FILE as CONTRACT, PolicyContract

FORMAT = 'dit4dit_ros/checkpoint/v1'
FILES = ('config.json', 'model.safetensors', 'normalization.json', CONTRACT)
ADD_CONTRACT = ('python -m dit4dit_policy.contract CHECKPOINT --write --fps FPS '
                '--camera NAME:HxW (see its --help)')
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


def _manifest(directory: Path, num_tensors: int, extra) -> dict:
    return {
        'format': FORMAT, 'created': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
        'files': {name: {'bytes': (directory / name).stat().st_size,
                         'sha256': _sha256(directory / name)} for name in FILES},
        'num_tensors': num_tensors, 'extra': extra or {},
    }


def _check_contract(contract: PolicyContract, normalizer: Normalizer, config: DiT4DiTConfig):
    contract.check_model(normalizer.raw_state_dim, normalizer.raw_action_dim,
                         config.video.num_views)
    if normalizer.action_names and tuple(normalizer.action_names) != contract.action_joints:
        raise ContractError("policy contract: action_joints differ from the normalisation's "
                            'action names')


def save_checkpoint(path, model, normalizer: Normalizer, contract: PolicyContract, extra=None,
                    dtype=None, state_dict=None) -> Path:
    """
    Write ``model``, ``normalizer`` and ``contract`` to the directory ``path`` atomically.

    ``dtype`` (e.g. ``torch.float16``) stores floating-point weights in that type (half the
    bytes: shipped demo checkpoints); loading casts them back to the model's type.
    ``state_dict``: the weights to write when ``model``'s own are shards (a sharded run's full
    state dict, gathered on this process); the frozen codec's entries are left out as always.
    Return the path; ContractError if the contract does not fit the model.
    """
    from safetensors.torch import save_file

    _check_contract(contract, normalizer, model.config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{path.name}.tmp-', dir=path.parent))
    try:
        _write(tmp / 'config.json', (json.dumps(model.config.to_dict(), indent=2) + '\n').encode())
        _write(tmp / 'normalization.json', normalizer.dumps().encode())
        _write(tmp / CONTRACT, contract.dumps().encode())
        weights = (model.trainable_state_dict() if state_dict is None else
                   {k: v for k, v in state_dict.items() if not k.startswith('codec.')})
        tensors = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
        if dtype is not None:
            tensors = {k: v.to(dtype) if v.is_floating_point() else v
                       for k, v in tensors.items()}
        save_file(tensors, str(tmp / 'model.safetensors'), metadata={'format': FORMAT})
        with open(tmp / 'model.safetensors', 'rb+') as f:
            os.fsync(f.fileno())
        manifest = _manifest(tmp, len(tensors), extra)
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


def verify_checkpoint(path, files=FILES) -> dict:
    """Check a checkpoint directory's ``files`` against its manifest; return the manifest."""
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
    for name in files:
        file = path / name
        want = manifest.get('files', {}).get(name)
        if want is None and name == CONTRACT:
            raise CheckpointError(f'{path}: no policy contract (contract.json): a checkpoint '
                                  f'written before contracts existed; add one with {ADD_CONTRACT}')
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


def read_normalizer(path, verify_contract: bool = True) -> Normalizer:
    """Return a verified checkpoint's normalisation (action and state names, ranges) only."""
    verify_checkpoint(path, FILES if verify_contract else FILES[:-1])
    return Normalizer.from_dict(json.loads((Path(path) / 'normalization.json').read_text()))


def read_contract(path) -> PolicyContract:
    """Return a verified checkpoint's policy contract (no torch, no weights read)."""
    verify_checkpoint(path)
    try:
        return PolicyContract.loads((Path(path) / CONTRACT).read_text())
    except ContractError as exc:
        raise CheckpointError(f'{Path(path) / CONTRACT}: {exc}') from exc


def write_contract(path, contract: PolicyContract) -> Path:
    """
    Add (or replace) the contract of a checkpoint written before contracts existed.

    The other files are verified first and the contract is checked against the configuration
    and normalisation; contract.json and the manifest are replaced atomically, one after the
    other (an interruption between the two leaves a checkpoint that verification refuses).
    """
    path = Path(path)
    manifest = verify_checkpoint(path, FILES[:-1])
    config = DiT4DiTConfig.from_dict(json.loads((path / 'config.json').read_text()))
    normalizer = Normalizer.from_dict(json.loads((path / 'normalization.json').read_text()))
    _check_contract(contract, normalizer, config)
    _replace(path / CONTRACT, contract.dumps())
    manifest['files'][CONTRACT] = {'bytes': (path / CONTRACT).stat().st_size,
                                   'sha256': _sha256(path / CONTRACT)}
    _replace(path / 'manifest.json', json.dumps(manifest, indent=2) + '\n')
    return path


def _replace(path: Path, text: str):
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f'.{path.name}.tmp')
    _write(tmp, text.encode())
    os.replace(tmp, path)


def load_checkpoint(path, device='cpu', model_factory=None):
    """
    Return (model, normalizer, manifest, contract) from a verified checkpoint directory.

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
    try:
        contract = PolicyContract.loads((path / CONTRACT).read_text())
        _check_contract(contract, normalizer, config)
    except ContractError as exc:
        raise CheckpointError(f'{path / CONTRACT}: {exc}') from exc
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
    return model.to(device).eval(), normalizer, manifest, contract


def export_checkpoint(source, destination, dtype=None, extra=None) -> Path:
    """
    Copy a verified checkpoint to ``destination``, its weights stored as ``dtype``.

    ``extra`` entries are added to (or replace) the manifest's metadata, e.g. the provenance of
    a shipped checkpoint in place of the training machine's dataset path.
    """
    model, normalizer, manifest, contract = load_checkpoint(source)
    metadata = {**manifest.get('extra', {}), **(extra or {})}
    return save_checkpoint(destination, model, normalizer, contract, extra=metadata, dtype=dtype)


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
