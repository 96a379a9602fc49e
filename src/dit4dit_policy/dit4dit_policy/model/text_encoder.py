"""
Instruction encoders and their per-instruction cache (in memory and on disk).

An instruction is encoded once; every later query with the same text is a dictionary look-up.
The embeddings are inputs of the video DiT's trainable ``crossattn_proj``, so the encoders
themselves are frozen and deterministic, which is what makes caching exact.

- ``bytes``: UTF-8 bytes through a fixed, seeded embedding table plus sinusoidal positions. No
  vocabulary to download; the video DiT's trainable projection learns to read it.
- ``bytes_context`` (a CPU-scale option of the ``tiny`` preset): ``bytes`` plus, on every one of
  the ``max_tokens`` rows (padding included), a bag-of-words summary of the whole instruction. A
  causal language model's hidden states have that property (every position after the prompt has
  read all of it); with plain bytes, an untrained cross-attention averages over mostly-zero
  padding, and two instructions that differ in one word reach the video tokens 0.2 % apart (1.7 %
  with the summary): faint for a from-scratch model in a CPU-sized run.
- ``cosmos_reason1`` (2B preset): the method's Qwen2.5-VL-7B text encoder from a local directory.
  All 28 hidden layers are standardised per token and concatenated (28 x 3584 = 100352 values),
  512 tokens padded, the Cosmos pipeline's chat template and NO attention mask, exactly as the
  pretrained cross-attention saw them (see ``CosmosReasonEncoder``). It is loaded only when an
  instruction is not in the cache; with a warm disk cache inference never loads it, and
  ``python -m dit4dit_train.embed_instructions`` fills that cache offline before training.
"""

import hashlib
import math
from pathlib import Path
import threading

import torch

from .config import TextConfig

SYSTEM_PROMPT = 'You are a helpful assistant who will provide prompts to an image generator.'


class InstructionEncoder:
    """Interface: ``encode(text) -> [max_tokens, embed_dim]`` float32, deterministic."""

    #: identifies the encoder and its settings; part of every cache key
    identity = ''

    def encode(self, text: str) -> torch.Tensor:
        """Return the embedding of one instruction."""
        raise NotImplementedError


class ByteEncoder(InstructionEncoder):
    """Fixed seeded byte embeddings plus sinusoidal positions; padding positions are zero."""

    def __init__(self, config: TextConfig, seed: int = 1234):
        """Build the fixed table for ``config.embed_dim``."""
        self.max_tokens, self.dim = config.max_tokens, config.embed_dim
        gen = torch.Generator().manual_seed(seed)
        self.table = torch.randn(256, self.dim, generator=gen)
        pos = torch.arange(self.max_tokens, dtype=torch.float32)[:, None]
        freq = torch.exp(-math.log(10000.0) * torch.arange(0, self.dim, 2) / self.dim)
        self.positions = torch.zeros(self.max_tokens, self.dim)
        self.positions[:, 0::2] = torch.sin(pos * freq)
        self.positions[:, 1::2] = torch.cos(pos * freq)[:, : self.dim // 2]
        self.identity = f'bytes-v1-{seed}-{self.max_tokens}-{self.dim}'

    def encode(self, text):
        """Embed the first ``max_tokens`` UTF-8 bytes of the instruction."""
        data = list(text.encode('utf-8'))[: self.max_tokens]
        out = torch.zeros(self.max_tokens, self.dim)
        if data:
            n = len(data)
            out[:n] = self.table[torch.tensor(data)] + self.positions[:n]
        return out


class ContextualByteEncoder(ByteEncoder):
    """``bytes`` plus a unit-variance bag-of-words vector on every row (see the module text)."""

    def __init__(self, config: TextConfig, seed: int = 1234):
        """Build the fixed byte table; word vectors are seeded by each word's hash."""
        super().__init__(config, seed)
        self.seed = seed
        self.identity = f'bytes_context-v1-{seed}-{self.max_tokens}-{self.dim}'

    def word_vector(self, word: str) -> torch.Tensor:
        """Return the fixed N(0, 1) vector of ``word`` (lower case)."""
        digest = hashlib.sha256(f'{self.seed}:{word.lower()}'.encode()).digest()
        gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], 'little'))
        return torch.randn(self.dim, generator=gen)

    def encode(self, text):
        """Embed the bytes, then add the instruction's words to every row."""
        out = super().encode(text)
        words = text.split()
        if words:
            bag = torch.stack([self.word_vector(w) for w in words]).sum(0) / math.sqrt(len(words))
            out += bag
        return out


def standardise_and_concat(hidden_states, eps=1e-8):
    """
    Standardise each layer's token vectors to zero mean and unit std, then concatenate.

    ``hidden_states``: the per-layer outputs [B, L, D] of layers 1..N (embeddings excluded).
    Returns [B, L, N * D] float32, the input the Cosmos ``crossattn_proj`` was trained on. The
    statistics are computed in the hidden states' own dtype (bf16 for the 7B encoder), as the
    Cosmos pipeline and DiT4DiT's feature extractor compute them; only the result is widened.
    """
    normed = [(h - h.mean(dim=-1, keepdim=True)) / (h.std(dim=-1, keepdim=True) + eps)
              for h in hidden_states]
    return torch.cat(normed, dim=-1).float()


def _file_digest(paths) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.suffix != '.safetensors'
                      else str(path.stat().st_size).encode())
    return digest.hexdigest()[:16]


class CosmosReasonEncoder(InstructionEncoder):
    """
    The method's Qwen2.5-VL text encoder, loaded lazily from ``config.model_path``.

    The recipe is the one the pretrained Cosmos-Predict2.5 cross-attention saw (diffusers'
    ``Cosmos2_5_PredictBasePipeline._get_prompt_embeds``, which DiT4DiT's feature extractor
    repeats): the chat template applied by the tokenizer itself to a system and a user message
    whose contents are ``[{'type': 'text', ...}]`` lists, no generation prompt, no vision ids;
    padded to ``max_tokens`` on the tokenizer's own padding side and truncated; the model called
    with ``input_ids`` ONLY. There is no attention mask: the pad tokens' states (most of the
    512, every token with left padding) are what the projection was trained on. Hidden layers
    1..N are standardised per token in the model's dtype and concatenated.

    ``identity`` (the cache key) names all of it: the model's files, the template, the length,
    the padding side, the mask rule, the layers and the dtype, so a cache written under another
    recipe is never read.
    """

    RECIPE = 'cosmos2.5-pipeline-v2'
    MASK_RULE = 'input_ids-only'
    LAYERS = 'all-1..N'

    def __init__(self, config: TextConfig, device=None, dtype=torch.bfloat16):
        """Remember where the model is; nothing is loaded until the first cache miss."""
        if not config.model_path:
            raise ValueError('text.model_path is empty: cosmos_reason1 needs a local '
                             'text-encoder directory (with its tokenizer)')
        path = Path(config.model_path)
        if not (path / 'config.json').is_file():
            raise ValueError(f'text.model_path {path}: no config.json there; it must be a local '
                             'transformers directory of the Qwen2.5-VL text encoder (with its '
                             'tokenizer)')
        self.config, self.device, self.dtype = config, device, dtype
        self._model = self._tokenizer = None
        self._identity = None

    @property
    def tokenizer(self):
        """Load the tokenizer on first use (cheap; the model waits for the first cache miss)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer
            self._tokenizer = AutoTokenizer.from_pretrained(self.config.model_path)
        return self._tokenizer

    @property
    def identity(self):
        """Name the recipe; this is the cache key (see the class docstring)."""
        if self._identity is None:
            path = Path(self.config.model_path)
            files = sorted(p for p in path.iterdir() if p.is_file() and (
                p.suffix in ('.json', '.jinja', '.safetensors', '.model', '.txt')))
            tok = self.tokenizer
            template = hashlib.sha256(str(tok.chat_template).encode()).hexdigest()[:12]
            self._identity = '|'.join((
                f'cosmos_reason1-{self.RECIPE}', f'model={path.name}:{_file_digest(files)}',
                f'template={template}', f'tokens={self.config.max_tokens}',
                f'pad={tok.padding_side}', f'mask={self.MASK_RULE}', f'layers={self.LAYERS}',
                f'dtype={str(self.dtype).replace("torch.", "")}'))
        return self._identity

    def _load(self):
        from transformers import AutoModelForImageTextToText
        self._model = AutoModelForImageTextToText.from_pretrained(
            self.config.model_path, dtype=self.dtype).to(self.device or 'cpu').eval()

    def input_ids(self, text) -> torch.Tensor:
        """Return the [1, max_tokens] token ids of one instruction, as the pipeline makes them."""
        messages = [{'role': 'system', 'content': [{'type': 'text', 'text': SYSTEM_PROMPT}]},
                    {'role': 'user', 'content': [{'type': 'text', 'text': text}]}]
        ids = self.tokenizer.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=False, add_vision_id=False,
            max_length=self.config.max_tokens, truncation=True, padding='max_length')
        if not isinstance(ids, list):
            ids = ids['input_ids']
        return torch.tensor([ids], dtype=torch.long)

    @torch.no_grad()
    def encode(self, text):
        """Encode one instruction as the method specifies (see the class docstring)."""
        if self._model is None:
            self._load()
        ids = self.input_ids(text).to(self._model.device)
        out = self._model(input_ids=ids, output_hidden_states=True)
        emb = standardise_and_concat(out.hidden_states[1:])[0]
        if emb.shape != (self.config.max_tokens, self.config.embed_dim):
            raise ValueError(f'text encoder gives {tuple(emb.shape)}, configuration says '
                             f'({self.config.max_tokens}, {self.config.embed_dim}) '
                             '(text.max_tokens, text.embed_dim = layers x width)')
        return emb.cpu()


ENCODERS = {'bytes': ByteEncoder, 'bytes_context': ContextualByteEncoder,
            'cosmos_reason1': CosmosReasonEncoder}


def make_text_encoder(config: TextConfig, device=None) -> InstructionEncoder:
    """Return the encoder named by ``config.encoder`` (``device``: where a model runs)."""
    try:
        cls = ENCODERS[config.encoder]
    except KeyError:
        raise ValueError(f'unknown text encoder {config.encoder!r}; valid: '
                         f'{", ".join(sorted(ENCODERS))}') from None
    return cls(config, device=device) if cls is CosmosReasonEncoder else cls(config)


class MissingEmbedding(LookupError):
    """An offline cache lacks an instruction (the encoder must not be loaded here)."""


class InstructionCache:
    """Per-instruction embeddings: memory first, then ``cache_dir`` (safetensors), then encode."""

    def __init__(self, encoder: InstructionEncoder, cache_dir='', offline=False):
        """
        Wrap ``encoder``; ``cache_dir`` '' keeps the cache in memory only.

        ``offline``: never encode; an instruction missing from ``cache_dir`` raises
        MissingEmbedding naming the command that fills it (training of the 2B preset: the 7B
        encoder stays out of the training loop).
        """
        if offline and not cache_dir:
            raise ValueError('an offline instruction cache needs a cache_dir')
        self.encoder = encoder
        self.offline = offline
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._memory = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def contains(self, text: str) -> bool:
        """Return whether ``text`` is in memory or has a cache file (it is not read)."""
        return text in self._memory or (self.cache_dir is not None and
                                        self._path(text).is_file())

    def _path(self, text):
        key = hashlib.sha256(f'{self.encoder.identity}\n{text}'.encode()).hexdigest()[:32]
        return self.cache_dir / f'{key}.safetensors'

    def get(self, text: str) -> torch.Tensor:
        """Return the embedding of ``text`` [max_tokens, embed_dim], encoding it at most once."""
        with self._lock:
            if text in self._memory:
                self.hits += 1
                return self._memory[text]
            emb = None
            if self.cache_dir is not None and self._path(text).is_file():
                from safetensors.torch import load_file
                try:
                    emb = load_file(str(self._path(text)))['embedding']
                except Exception:  # a corrupt cache file is re-computed, never trusted
                    emb = None
            if emb is None:
                if self.offline:
                    raise MissingEmbedding(
                        f'instruction {text!r} is not in the embedding cache {self.cache_dir} '
                        f'(encoder {self.encoder.identity}); fill it first with python -m '
                        'dit4dit_train.embed_instructions --dataset DATA --cache-dir '
                        f'{self.cache_dir} [--preset/--override as for training]')
                self.misses += 1
                emb = self.encoder.encode(text).float().contiguous()
                if self.cache_dir is not None:
                    self._write(text, emb)
            else:
                self.hits += 1
            self._memory[text] = emb
            return emb

    def _write(self, text, emb):
        from safetensors.torch import save_file
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = self._path(text)
        tmp = path.with_suffix('.tmp')
        save_file({'embedding': emb}, str(tmp), metadata={'instruction': text,
                                                          'encoder': self.encoder.identity})
        tmp.replace(path)

    def batch(self, texts) -> torch.Tensor:
        """Return [B, max_tokens, embed_dim] for a list of instructions."""
        return torch.stack([self.get(t) for t in texts])
