"""The channel rule against the table of the official model (reference/architecture.md)."""
import pytest

from rexnet_mmdet.models.channels import (NUM_BLOCKS, block_settings, check_out_indices, check_widen_factor,
                                          final_channels, linear_block_channels, lite_block_channels, make_divisible,
                                          out_channels, rounded_block_channels, stem_channels, tap_specs)

# w: stem, block0, C2, C3, C4, exp16, C5, final — counted on the official model.
OFFICIAL = {
    0.9: (32, 16, 36, 56, 117, 702, 168, 1152),
    1.0: (32, 16, 38, 61, 128, 768, 185, 1280),
    1.3: (42, 21, 50, 79, 167, 1002, 240, 1664),
    1.5: (48, 24, 58, 92, 193, 1158, 277, 1920),
    2.0: (64, 32, 77, 122, 257, 1542, 370, 2560),
    2.2: (70, 35, 85, 134, 283, 1698, 406, 2816),
    3.0: (96, 48, 116, 183, 386, 2316, 554, 3840),
}


@pytest.mark.parametrize('w', sorted(OFFICIAL))
def test_tap_channels_match_official(w):
    stem, *taps = OFFICIAL[w]
    assert stem_channels(w) == stem
    assert [t.channels for t in tap_specs(w)] == taps
    assert [t.stride for t in tap_specs(w)] == [2, 4, 8, 16, 16, 32, 32]


def test_round_half_to_even():
    # 16 + 2 * 11.25 = 38.5 -> 38 (half to even); rounding half up would give 39 and break the weights.
    assert linear_block_channels(1.0)[2] == 38
    assert linear_block_channels(1.0) == [16, 27, 38, 50, 61, 72, 84, 95, 106, 117, 128, 140, 151, 162, 174, 185]


def test_block_structure():
    s = block_settings(1.0)
    assert len(s) == NUM_BLOCKS
    assert [b.stride for b in s] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert [b.index for b in s if b.use_se] == list(range(3, 16))
    assert [b.index for b in s if b.use_residual] == [2, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15]
    assert s[0].expand_ratio == 1 and all(b.expand_ratio == 6 for b in s[1:])
    assert s[3].hidden_channels == 38 * 6 and s[3].se_channels == 228 // 12
    assert all(b.in_channels == a.out_channels for a, b in zip(s, s[1:]))


def test_small_widths_keep_stem_and_first_block():
    for w in (0.5, 0.75, 0.9):
        assert stem_channels(w) == 32 and linear_block_channels(w)[0] == 16


def test_explicit_block_channels():
    chans = [16, 24, 24, 32, 32, 64, 64, 64, 96, 96, 96, 160, 160, 160, 160, 320]
    s = block_settings(1.0, chans)
    assert [b.out_channels for b in s] == chans
    assert out_channels(1.0, (1, 2, 3, 5), chans) == [24, 32, 96, 320]
    with pytest.raises(ValueError, match='16 positive integers'):
        block_settings(1.0, chans[:-1])
    with pytest.raises(ValueError, match='16 positive integers'):
        block_settings(1.0, chans[:-1] + [0])


@pytest.mark.parametrize('bad', [0, -1.0, 'wide', None, float('nan'), float('inf'), True])
def test_bad_widen_factor(bad):
    with pytest.raises(ValueError, match='widen_factor must be a positive'):
        check_widen_factor(bad)


# ReXNet-lite block outputs, counted on the official model (reference README).
LITE_BLOCKS = {
    1.0: [16, 32, 40, 48, 64, 72, 80, 96, 104, 112, 128, 136, 144, 160, 168, 184],
    2.0: [32, 56, 80, 96, 120, 144, 160, 184, 208, 232, 248, 272, 296, 320, 336, 360],
}


@pytest.mark.parametrize('m', sorted(LITE_BLOCKS))
def test_lite_block_channels_match_official(m):
    assert lite_block_channels(m) == LITE_BLOCKS[m]
    assert stem_channels(m, 'lite') == 32 * m and final_channels(m, 'lite') == 1280 * m


def test_lite_stem_and_final_conv_below_and_above_one():
    assert [stem_channels(m, 'lite') for m in (0.5, 0.9, 1.3, 1.5)] == [32, 32, 40, 48]
    assert [final_channels(m, 'lite') for m in (0.5, 1.0, 1.3, 1.5)] == [1280, 1280, 1664, 1920]
    assert lite_block_channels(0.5)[0] == 16


def test_make_divisible_is_timms_rounding():
    assert [make_divisible(v, 8) for v in (38, 61, 77, 4, 12, 185)] == [40, 64, 80, 8, 16, 184]
    assert make_divisible(116, 16) == 112 and make_divisible(20, 16) == 32  # 16 < 0.9 * 20: one more step


@pytest.mark.parametrize('w, divisor, taps', [
    (1.0, 8, (40, 64, 128, 184)), (2.0, 8, (80, 120, 256, 368)), (3.0, 16, (112, 176, 384, 560))])
def test_rexnet_r_taps_match_timm(w, divisor, taps):
    assert tuple(out_channels(w, (1, 2, 3, 5), channel_divisor=divisor)) == taps
    assert rounded_block_channels(w, divisor) == [make_divisible(c, divisor) for c in linear_block_channels(w)]


@pytest.mark.parametrize('bad, match', [((7,), 'out of range'), ((-1,), 'out of range'), ((5, 3), 'increasing order'),
                                        ((), 'empty'), (3, 'must be a sequence'), ('12', 'must be a sequence')])
def test_out_channels_checks_out_indices_as_the_backbone_does(bad, match):
    with pytest.raises(ValueError, match=match):
        out_channels(1.0, bad)
    with pytest.raises(ValueError, match=match):
        check_out_indices(bad)
