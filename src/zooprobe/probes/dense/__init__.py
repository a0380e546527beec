"""Dense probes on frozen spatial features: depth, surface normals and figure-ground.

Following Chen, Marks & Cheng (2024), a small head reads a frozen (N, C, h, w) feature map and
predicts a per-pixel target at the label resolution:

* ``linear``: a 1x1 convolution, then bilinear upsampling;
* ``conv``: two 3x3 convolutions with ReLU, a 1x1 convolution, then upsampling.

Tasks, their losses and metrics:

* ``depth``: predicts log depth with the scale-invariant loss (Eigen et al. 2014); each predicted
  map is aligned to the truth per image (:data:`DEPTH_ALIGNMENTS`), then scored with delta1..3
  (share of pixels with max(pred/gt, gt/pred) < 1.25**k), AbsRel and RMSE over the pixels whose
  true depth is finite and positive;
* ``normals``: predicts a 3-vector normalised per pixel, with the angular (cosine) loss;
  metrics mean and median angular error in degrees and % of pixels within 11.25, 22.5 and 30,
  over the pixels whose true normal is finite and of non-zero length;
* ``figure_ground``: predicts a foreground logit with binary cross-entropy; metrics
  foreground IoU and pixel accuracy.

Modules: :mod:`.metrics` (labelled pixels, per-task metrics, per-image depth alignment; no torch),
:mod:`.heads` (losses, heads, fitting and prediction) and :mod:`.probe` (every task and layer of one
model, the layer choice, and the ``dense-probe`` stage from files to payload).
"""
