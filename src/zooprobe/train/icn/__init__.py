"""Introspective classification: reclassification-by-synthesis (Jin, Lazarow & Tu, 2017).

One network is both classifier and generator. Each round, pseudo-negatives are synthesised by
Langevin dynamics on the input (:func:`zooprobe.train.icn.sampler.langevin`), drawn from the distribution that the current
classifier defines, ``p(x | class k) ∝ exp(score_k(x) / T)`` on the valid box, and join the
training set as negatives with hard labels; the classifier then goes on training on the real
data plus every pseudo-negative so far. By default each round's chains continue from the
previous round's samples (persistent chains, ``init: previous``).

**Output layout: K+1 softmax outputs**, the K classes plus "pseudo-negative" (index K), rather
than K one-vs-all heads. Reasons:

- the class decision stays an ordinary softmax over the first K logits, so the trained network
  is a normal zoo model once the negative output is cut off (``zooprobe.zoo.checkpoints.drop_negative_output``);
- the baseline is the *same* network and loss trained with zero rounds, so a comparison isolates
  the pseudo-negatives, and 0 rounds reproduces the baseline bit for bit (tested);
- ``logit_k - logit_neg = log p(k | x) / p(neg | x)`` is the log density ratio that the paper's
  sampler climbs for class k, so one forward pass gives every class's score.

The baseline's (K+1)-th output never sees an example; it is pushed down by the softmax and does
not take part in the class decision.

**Budget.** The rounds sit at evenly spaced epoch boundaries of the shared recipe, so the ICN
and its baseline make the same passes over the real data with the same learning-rate schedule
and seed; the ICN also trains on its negatives and pays for sampling (both timed).

The same machinery probes frozen features (:func:`zooprobe.train.icn.probe.fit_feature_probe`): a linear or MLP head with
K+1 outputs whose pseudo-negatives are synthesised in (standardised) feature space.

Modules: :mod:`~zooprobe.train.icn.sampler` (Langevin dynamics and the per-epoch pixel synthesiser),
:mod:`~zooprobe.train.icn.training` (an ICN trained from scratch), :mod:`~zooprobe.train.icn.evaluation`
(test, OOD and FGSM error), :mod:`~zooprobe.train.icn.comparison` (baseline against ICN, one seed),
:mod:`~zooprobe.train.icn.probe` (introspective probes on frozen features) and
:mod:`~zooprobe.train.icn.tables` (tidy scores and paired verdicts).
"""
