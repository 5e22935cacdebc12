import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kinema.core import KinemaError

from kinema.sample.conditioning import (
    FIELDS,
    Insertion,
    MaskStrategyError,
    apply_insertions,
    format_mask_strategy,
    parse_mask_strategy,
    pixel_frames,
)

# ---------------------------------------------------------------- parsing, field by field


def test_defaults_fill_missing_trailing_fields():
    assert parse_mask_strategy("0") == [Insertion(0, 0, 0, 0, 1, 0.0)]
    assert parse_mask_strategy("2") == [Insertion(loop_id=2)]
    assert parse_mask_strategy("0,1") == [Insertion(ref_id=1)]
    assert parse_mask_strategy("0,0,3") == [Insertion(ref_start=3)]
    assert parse_mask_strategy("0,0,0,-8") == [Insertion(target_start=-8)]
    assert parse_mask_strategy("0,0,0,-8,8") == [Insertion(target_start=-8, length=8)]
    assert parse_mask_strategy("0,0,0,0,32,0.4") == [Insertion(length=32, edit_ratio=0.4)]


def test_groups_and_whitespace():
    assert parse_mask_strategy(" 0 ; 0, 1, 0, -1, 1 ") == [Insertion(), Insertion(0, 1, 0, -1, 1, 0.0)]
    assert parse_mask_strategy("") == [] and parse_mask_strategy(None) == []


@pytest.mark.parametrize(
    "text, field",
    [
        ("x", "field 1 (loop_id)"),
        ("-1", "field 1 (loop_id)"),
        ("0,a", "field 2 (ref_id)"),
        ("0,-2", "field 2 (ref_id)"),
        ("0,0,1.5", "field 3 (ref_start)"),
        ("0,0,0,", "field 4 (target_start)"),
        ("0,0,0,0,0", "field 5 (length)"),
        ("0,0,0,0,two", "field 5 (length)"),
        ("0,0,0,0,1,1.5", "field 6 (edit_ratio)"),
        ("0,0,0,0,1,nan", "field 6 (edit_ratio)"),
        ("0,0,0,0,1,x", "field 6 (edit_ratio)"),
        ("0;0,0,0,0,1,-0.1", "group 2"),
    ],
)
def test_malformed_field_is_named(text, field):
    with pytest.raises(MaskStrategyError, match=field.replace("(", r"\(").replace(")", r"\)")):
        parse_mask_strategy(text)


def test_too_many_fields_and_empty_groups():
    with pytest.raises(MaskStrategyError, match="7 fields; at most 6"):
        parse_mask_strategy("0,0,0,0,1,0,9")
    with pytest.raises(MaskStrategyError, match="group 2 is empty"):
        parse_mask_strategy("0;;1")
    assert issubclass(MaskStrategyError, KinemaError)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789,;.-+ eaxn\t١")), max_size=40) | st.text(max_size=30))
def test_random_strings_parse_or_raise_a_named_error(text):
    try:
        parsed = parse_mask_strategy(text)
    except MaskStrategyError as exc:
        assert "mask_strategy" in str(exc)
        return
    # anything accepted is well-formed and survives a round trip
    assert parse_mask_strategy(format_mask_strategy(parsed)) == parsed
    for ins in parsed:
        assert ins.loop_id >= 0 and ins.ref_id >= 0 and ins.length >= 1 and 0 <= ins.edit_ratio <= 1


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(-20, 20), st.integers(-20, 20),
                          st.integers(1, 40), st.floats(0, 1)), min_size=1, max_size=4))
def test_well_formed_strategies_round_trip(groups):
    text = ";".join(",".join(str(v) for v in g) for g in groups)
    parsed = parse_mask_strategy(text)
    assert [tuple(getattr(p, f) for f in FIELDS) for p in parsed] == [tuple(g) for g in groups]


# ---------------------------------------------------------------- applying


def _latents(frames, fill):
    return torch.full((4, frames, 2, 2), float(fill))


def test_image_to_video_writes_frame_0_and_keeps_it():
    z, mask = apply_insertions(_latents(8, 0), [_latents(1, 7)], parse_mask_strategy("0"))
    assert mask.tolist() == [0.0] + [1.0] * 7
    assert (z[:, 0] == 7).all() and (z[:, 1:] == 0).all()


def test_extension_places_the_last_8_reference_frames():
    ref = torch.arange(12.0).reshape(1, 12, 1, 1).expand(4, 12, 2, 2)
    z, mask = apply_insertions(_latents(16, -1), [ref], parse_mask_strategy("0,0,0,-8,8"))
    # ref frames 0..7 go to clip frames 8..15
    assert z[0, 8:, 0, 0].tolist() == list(range(8)) and (z[:, :8] == -1).all()
    assert mask.tolist() == [1.0] * 8 + [0.0] * 8


def test_connecting_two_images():
    z, mask = apply_insertions(_latents(6, 0), [_latents(1, 1), _latents(1, 2)], parse_mask_strategy("0;0,1,0,-1,1"))
    assert (z[:, 0] == 1).all() and (z[:, -1] == 2).all() and (z[:, 1:-1] == 0).all()
    assert mask.tolist() == [0, 1, 1, 1, 1, 0]


def test_editing_with_edit_ratio_and_length_clipping():
    z, mask = apply_insertions(_latents(4, 0), [_latents(32, 5)], parse_mask_strategy("0,0,0,0,32,0.4"))
    assert (z == 5).all() and torch.allclose(mask, torch.full((4,), 0.4))


def test_only_the_current_loop_applies():
    z, mask = apply_insertions(_latents(4, 0), [_latents(1, 3)], parse_mask_strategy("1"), loop_id=0)
    assert (z == 0).all() and (mask == 1).all()


def test_out_of_range_positions_and_refs_are_named():
    with pytest.raises(MaskStrategyError, match="ref_id 1 but only 1 reference"):
        apply_insertions(_latents(4, 0), [_latents(1, 3)], parse_mask_strategy("0,1"))
    with pytest.raises(MaskStrategyError, match="target_start 9"):
        apply_insertions(_latents(4, 0), [_latents(1, 3)], parse_mask_strategy("0,0,0,9"))
    with pytest.raises(MaskStrategyError, match="ref_start -3"):
        apply_insertions(_latents(4, 0), [_latents(2, 3)], parse_mask_strategy("0,0,-3"))


def test_pixel_frames_of_latents():
    assert pixel_frames(4, 1) == 4  # frame-wise VAE
    assert pixel_frames(2, 4) == 5  # causal video VAE: 1 + 4
