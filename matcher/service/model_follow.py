"""Every process of a store serves the model the store records (issue 23).

A reindex, in whichever process or `matcher reindex` it runs, swaps its model by recording it
in the store with a `model` index change (matcher/service/serving.py). Each other process's
index follower meets that change and moves too (`follow_model`): it loads the new pipeline,
embeds the faces it stored meanwhile with the old one (they have no vector of the new model
yet), builds both indexes of the new model from the store and swaps pipeline, indexes and
calibrations in one step under the model lock, as the reindex did. Until then it serves the
old model, whose vectors every face still has.

A process that embedded such faces logs a `model` change of its own: the processes already on
the new model (the reindex's among them) then read their indexes again from the store, which
only now holds those faces' new vectors (`match_store` rebuilds an index only when it differs).
"""

from __future__ import annotations

import logging

from matcher.service.embedding import LocalEmbedding, embed_missing
from matcher.service.reindex import build_serving, catch_up, match_store
from matcher.service.runtime import Runtime
from matcher.service.serving import model_settings, with_model_settings
from matcher.store import session_scope
from matcher.store.index_log import ChangeKind, log_change
from matcher.store.serving import serving_model
from matcher.wiring import load_pipeline

log = logging.getLogger(__name__)


def follow_model(matcher: Runtime) -> bool:
    """Moves `matcher` to the model the store records, if it serves another; else makes its
    indexes equal to the store's faces of its model. Whether it switched. A model this
    process cannot load (a projection file it cannot read) is logged, and the old one serves
    on: its vectors remain for every face stored."""
    with matcher.sessions() as session:
        wanted = serving_model(session)
    serving = model_settings(matcher.settings)
    if wanted is None or all(serving.get(k) == v for k, v in wanted.items()):
        with matcher.model_lock.write(), matcher.case_lock:
            if match_store(matcher.sessions, matcher.serving):
                matcher.case_index_changes += 1
                log.info("indexes read again from the store: faces of other processes got "
                         "vectors of %s", matcher.model_id)
        return False
    try:
        target = with_model_settings(matcher.settings, wanted)
        pipeline = load_pipeline(target)
    except Exception:
        log.exception("the store now serves %s, which this process cannot load: it serves "
                      "%s until it can", wanted, matcher.model_id)
        return False
    embedding = LocalEmbedding(pipeline, target.workers)
    embedded = embed_missing(matcher.sessions, matcher.settings.data_dir, pipeline.model_id,
                             embedding, matcher.settings.detect_batch_size).faces
    new = build_serving(target, matcher.sessions, pipeline)
    with matcher.model_lock.write(), matcher.case_lock:
        embedded += catch_up(matcher, new, embedding)
        # Pipeline, indexes and calibrations in one step, as the reindex's swap.
        matcher.serving, matcher.settings = new, target
        matcher.case_index_changes += 1
    if embedded:  # processes already on the new model read these faces' vectors
        with session_scope(matcher.sessions) as session:
            log_change(session, ChangeKind.MODEL)
    log.info("now serving %s (%d case faces), as every process of the store: a reindex swapped "
             "it; %d faces stored here meanwhile embedded for it", new.model_id, len(new.index),
             embedded)
    return True
