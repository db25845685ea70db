"""Status answers (record-info and friends), read per family, as KIE documents each.

The poller knows a generation's family, so the answer is read where that family puts it: the
same key can mean a result in one family and a thumbnail in another (``resultImageUrl`` is Flux
Kontext's image but Runway Aleph's thumbnail), and a flag can mean two things (Aleph's
``successFlag`` 0 is "running" or "failed", told apart by ``errorMessage``). Nothing here raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from app.kie.families import FAILED, RUNNING, SUCCEEDED, state_word, status_word, success_flag
from app.kie.outcomes import collect_media, finish, suno_tracks
from app.kie.parsed import ParsedCallback
from app.kie.payload import as_int, as_progress, as_text, at, decoded, failure_text, urls_in

Reader = Callable[[ParsedCallback, dict[str, Any]], None]

# Suno's record-info status words that are stages of its three-stage progress.
_SUNO_STAGE_OF = {"TEXT_SUCCESS": "text", "FIRST_SUCCESS": "first", "SUCCESS": "complete"}


def parse_status(family: str, envelope: Any, task_id: str | None = None) -> ParsedCallback:
    """Read one status answer of ``family`` (the whole ``{code, msg, data}`` envelope); never raises."""
    parsed = ParsedCallback(task_id=task_id, strategy="status", shape=f"status:{family}")
    try:
        top = decoded(envelope)
        if not isinstance(top, Mapping):
            parsed.shape = "unparseable"
            return parsed
        parsed.code = as_int(top.get("code"))
        data = decoded(top.get("data"))
        data = dict(data) if isinstance(data, Mapping) else {}
        message = as_text(top.get("msg")) or as_text(top.get("message"))
        _READERS.get(family, _generic)(parsed, data)
        if parsed.state == SUCCEEDED and not parsed.result_urls and parsed.result_object is None:
            parsed.state = None  # KIE says done but shows no result yet: ask again later
        finish(parsed, data, message)
    except Exception:  # the contract: never raise, whatever KIE answered
        parsed.state, parsed.shape = None, "unparseable"
    return parsed


def _market(parsed: ParsedCallback, data: dict[str, Any]) -> None:
    # jobs/recordInfo: state waiting|queuing|generating|success|fail; resultJson is a JSON string.
    parsed.state = state_word(data.get("state"))
    result = decoded(data.get("resultJson"))
    if isinstance(result, dict):
        parsed.result_urls, parsed.cover_url = collect_media(result)
        if "resultObject" in result:
            parsed.result_object = result.get("resultObject")
    if parsed.state == FAILED:
        parsed.error_code = as_text(data.get("failCode"))
        parsed.error = failure_text(data.get("failMsg"))


def _runway(parsed: ParsedCallback, data: dict[str, Any]) -> None:
    # runway/record-detail: state wait|queueing|generating|success|fail; videoInfo.videoUrl is the
    # video, videoInfo.imageUrl its cover.
    parsed.state = state_word(data.get("state"))
    parsed.result_urls = urls_in(at(data, ("videoInfo", "videoUrl")))
    parsed.cover_url = next(iter(urls_in(at(data, ("videoInfo", "imageUrl")))), None)
    if parsed.state == FAILED:
        parsed.error_code = as_text(data.get("failCode"))
        parsed.error = failure_text(data.get("failMsg"))


def _aleph(parsed: ParsedCallback, data: dict[str, Any]) -> None:
    # aleph/record-info: successFlag 1 = success; 0 = in progress, or failed when errorMessage
    # (with errorCode) says so. response.resultVideoUrl is the video, resultImageUrl a thumbnail.
    flag = as_int(data.get("successFlag"))
    error = as_text(data.get("errorMessage"))
    error_code = as_text(data.get("errorCode"))
    if flag == 1:
        parsed.state = SUCCEEDED
    elif flag == 0:
        failed = bool(error) or error_code not in (None, "0")
        parsed.state = FAILED if failed else RUNNING
    parsed.result_urls = urls_in(at(data, ("response", "resultVideoUrl")))
    parsed.cover_url = next(iter(urls_in(at(data, ("response", "resultImageUrl")))), None)
    if parsed.state == FAILED:
        parsed.error_code = error_code
        parsed.error = failure_text(error)


def _suno(parsed: ParsedCallback, data: dict[str, Any]) -> None:
    # generate/record-info: status PENDING|TEXT_SUCCESS|FIRST_SUCCESS|SUCCESS or a failure word;
    # response.sunoData[] holds the tracks (audioUrl, with imageUrl as each track's cover).
    status = as_text(data.get("status"))
    parsed.state = status_word(status)
    parsed.stage = _SUNO_STAGE_OF.get((status or "").upper())
    if parsed.state == SUCCEEDED:
        parsed.result_urls, parsed.cover_url = suno_tracks(at(data, ("response", "sunoData")))
    if parsed.state == FAILED:
        parsed.error_code = as_text(data.get("errorCode"))
        parsed.error = failure_text(data.get("errorMessage"), status)


def _4o(parsed: ParsedCallback, data: dict[str, Any]) -> None:
    # gpt4o-image/record-info: successFlag 0|1|2 and status GENERATING|SUCCESS|..._FAILED; the
    # images are response.resultUrls (result_urls in some of KIE's examples); progress "0.00".."1.00".
    parsed.state = success_flag(data.get("successFlag")) or status_word(data.get("status"))
    parsed.progress = as_progress(data.get("progress"))
    response = at(data, ("response",))
    parsed.result_urls = urls_in(at(response, ("resultUrls",))) or urls_in(at(response, ("result_urls",)))
    _flag_error(parsed, data)


def _flag_family(*paths: tuple[str, ...]) -> Reader:
    """A successFlag family (Veo, Flux Kontext, Midjourney, Luma): flag 0 running, 1 (Luma: 4 too)
    success, 2 and 3 failed; the results at the first of ``paths`` that holds any."""

    def read(parsed: ParsedCallback, data: dict[str, Any]) -> None:
        parsed.state = success_flag(data.get("successFlag"))
        for path in paths:
            if urls := urls_in(at(data, path)):
                parsed.result_urls = urls
                break
        _flag_error(parsed, data)

    return read


def _generic(parsed: ParsedCallback, data: dict[str, Any]) -> None:
    # A family without a reader of its own (none today): the shape-recognising callback rules.
    parsed.state = success_flag(data.get("successFlag")) or status_word(data.get("status"))
    parsed.result_urls, parsed.cover_url = collect_media(data)
    _flag_error(parsed, data)


def _flag_error(parsed: ParsedCallback, data: dict[str, Any]) -> None:
    if parsed.state == FAILED:
        parsed.error_code = as_text(data.get("errorCode"))
        parsed.error = failure_text(data.get("errorMessage"), data.get("status"))


_READERS: dict[str, Reader] = {
    "market": _market,
    # response.resultUrls; fullResultUrls holds the whole video of an extension.
    "veo": _flag_family(("response", "resultUrls"), ("response", "fullResultUrls")),
    "runway": _runway,
    "aleph": _aleph,
    "suno": _suno,
    "4o": _4o,
    # response.resultImageUrl (originImageUrl is a 10-minute copy of the input: never a result).
    "flux_kontext": _flag_family(("response", "resultImageUrl")),
    # resultInfoJson.resultUrls is a list of {"resultUrl": ...}.
    "midjourney": _flag_family(("resultInfoJson", "resultUrls")),
    "luma": _flag_family(("response", "resultUrls")),
}
