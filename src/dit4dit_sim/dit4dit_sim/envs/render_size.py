"""The render sizes the environments accept (one check for all of them)."""


def checked_render_size(size, max_height: int, max_width: int):
    """Return ``size`` as (height, width) ints, or raise if outside 16x16 .. the maximum."""
    h, w = (int(v) for v in size)
    if not (16 <= h <= max_height and 16 <= w <= max_width):
        raise ValueError(f'render_size {size} must be within 16x16 .. {max_height}x{max_width}')
    return h, w
