"""Every text the bot sends, in one place (part 2 of the bot adds a second language here)."""

from __future__ import annotations

WELCOME = (
    "Hi! I make images, video and music with KIE.ai.\n"
    "Try /imagine a lighthouse at dusk, or /models to see what I can use."
)
HELP = (
    "/imagine <prompt> makes an image with the default model.\n"
    "/generate <model id> <prompt> uses the model you name (see /models).\n"
    "/models lists the models by kind.\n"
    "I send the result here when it is ready."
)
KIND_TITLES = {"image": "Images", "video": "Video", "audio": "Music and audio"}
USAGE_GENERATE = "Type /generate <model id> <prompt>, for example /generate {example} a red fox in the snow."
USAGE_IMAGINE = "Type /imagine <prompt>, for example /imagine a red fox in the snow."
UNKNOWN_MODEL = "I don't know the model {model}. /models lists the ones I can use."
NEEDS_MORE = (
    "{model} needs more than a prompt ({fields}); from here I can only start models that take a "
    "prompt alone. /models lists them."
)
INVALID_INPUT = "That didn't work: {message}"
UNAVAILABLE = "I can't start that right now; please try again in a minute."
APOLOGY = "Sorry, something went wrong with your last message. Please try again."
STATUS_QUEUED = "Queued: {model}"
STATUS_SUBMITTED = "At KIE: {model}"
STATUS_RUNNING = "Working: {model}"
STATUS_RUNNING_PROGRESS = "Working: {model} ({percent}%)"
STATUS_DONE = "Done: {model}"
STATUS_FAILED = "Failed: {model}. {reason}"
STATUS_TIMED_OUT = "Timed out: {model}. KIE gave no result in time."
STATUS_CANCELED = "Canceled: {model}."
RESULT_LINK = "Done: {model}. The file is too large to send here; download it: {url}"
