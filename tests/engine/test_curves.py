"""Training curves: mmengine's scalar logs of one or several sessions, drawn as a PNG."""
import json

import cv2

from rexnet_mmdet.engine.curves import plot_training_curves, read_scalar_logs


def _session(work_dir, stamp, records):
    vis = work_dir / stamp / 'vis_data'
    vis.mkdir(parents=True)
    (vis / f'{stamp}.json').write_text('\n'.join(json.dumps(r) for r in records) + '\n')
    return str(vis / f'{stamp}.json')


def _train(i, loss):
    return dict(lr=0.01, loss=loss, loss_cls=loss / 2, loss_bbox=loss / 2, acc=90.0, iter=i, step=i)


def _val(ap50):
    return {'coco/bbox_mAP': ap50 / 2, 'coco/bbox_mAP_50': ap50, 'data_time': 0.1, 'time': 0.2, 'step': 1}


def test_sessions_of_a_resumed_run_are_stitched(tmp_path):
    first = _session(tmp_path, '20240101_000000',
                     [_train(i, 3.0 - i / 10) for i in range(1, 4)] + [_val(0.1)]
                     + [_train(i, 3.0 - i / 10) for i in range(4, 7)] + [_val(0.2)] + [_train(7, 2.2)])
    # Killed after iter 7 with the last checkpoint at iter 4: the second session repeats 5-7.
    second = _session(tmp_path, '20240101_010000',
                      [_train(i, 2.0 - i / 100) for i in range(5, 11)] + [_val(0.5)])
    with open(first, 'a') as f:
        f.write('{"loss": 1.0, "it')  # a line cut short by the kill
    log = read_scalar_logs([first, second])
    assert [r['iter'] for r in log.train] == list(range(1, 11))
    assert log.train[4]['loss'] == 2.0 - 5 / 100  # the repeated iterations come from the resumed run
    # Validations follow the iteration they came after; the one at 6 was in the repeated part.
    assert [(r['iter'], r['coco/bbox_mAP_50']) for r in log.val] == [(3, 0.1), (10, 0.5)]


def test_plot_is_written(tmp_path):
    _session(tmp_path, '20240101_000000',
             [_train(i, 3.0 / i) for i in range(1, 21)] + [_val(0.7)])
    path = plot_training_curves(str(tmp_path))
    assert path == str(tmp_path / 'training_curves.png')
    image = cv2.imread(path)
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 400
    assert image.std() > 10  # something was drawn


def test_no_log_no_plot(tmp_path):
    assert plot_training_curves(str(tmp_path)) is None
