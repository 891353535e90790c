"""The producer side of occluded-ccreid: source tree -> part maps -> occlusion -> Parquet -> Hub.

Modules, in the order data flows through them:
  occluded_ccreid.sources  source layouts (reading labels from paths)
  builder.images           decoding source images to RGB
  builder.parsing          part maps: SCHP or a transformers segmentation model, or precomputed maps
  occluded_ccreid.occlusion  occluders (the paper's parts, rectangles, people, objects), fills, presets
  builder.rows             one output row per image (encoding)
  builder.processing       records -> rows: the stages above on threads with bounded queues
  builder.config           what a build is asked to do (BuildConfig) and the parser it asks for
  builder.preflight        every check that needs no image, before any work
  builder.shards           the shard plan: which records go into which shard, fixed up front
  builder.writer           Parquet shards
  builder.staging          the staging folder: journal of finished shards, resume, move into place
  builder.distribute       which process makes which shards (--processes: worker processes)
  builder.pipeline         `builder build`: scan, checks, plan, process, write, card
  builder.card             the dataset card
  builder.verify           checks of a build folder or a published repo
  builder.publish          upload to the Hub (builder.hub_errors: its errors in one line)
"""

__version__ = "0.1.0"
