"""How well a model's representation or predictions agree with human judgements.

One module per protocol:

* :mod:`.rsa`: Spearman correlation between the model's and the humans' pairwise similarities over
  the upper triangle, against the group similarity (``rsa``) and, where per-subject RDMs exist,
  averaged over subjects (``rsa_subject_mean``); the Kriegeskorte noise ceiling of per-subject RDMs
  (Nili et al. 2014), which bounds ``rsa_subject_mean`` (not ``rsa``), and the ceiling estimate
  that ``rsa_fraction_of_ceiling`` divides by.
* :mod:`.odd_one_out`: odd-one-out accuracy on triplets, with a CI over stimuli (each triplet
  weighted by its members' draw counts), and the human consistency ceiling of repeated triplets.
* :mod:`.layer_choice`: a layer choice that does not look at the scored data (``last``) or is
  cross-validated over halves of the stimuli (``best_cv``), on one scorer of every metric.
* :mod:`.human_labels`: agreement with human label distributions (CIFAR-10H): cross-entropy, KL,
  and the correlation of per-image entropies; prediction tables scored the same way.
* :mod:`.representation`: every metric of every layer of one model, with the layer choice.
* :mod:`.stage`: what the ``align`` and ``align-tables`` commands compute, from files to payload.

Every bootstrap takes its resamples from a seed (:mod:`.resampling`), so every model is resampled
the same way and two models' replicates stay paired.
"""
