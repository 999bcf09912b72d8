"""Leakage audit: confound probes and split hygiene for a prepared cache (``eegalign audit``).

* :mod:`eegalign.audit.features` -- pre-response window and slow-drift features, epoch timing;
* :mod:`eegalign.audit.ridge` -- the closed-form ridge classifier and its cheap permuted refits;
* :mod:`eegalign.audit.probes` -- one probe = features -> within-subject decoding -> accuracy, CI, p;
* :mod:`eegalign.audit.hygiene` -- images shared between splits, temporal interleaving;
* :mod:`eegalign.audit.run` -- every probe, Holm-Bonferroni decision, audit.json/audit.html;
* :mod:`eegalign.audit.report` -- the audit as report sections (also used by ``evaluate --audit``).
"""
