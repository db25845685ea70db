"""Every text the bot sends, in English and Russian: one catalog of messages per language.

``language_for`` picks Russian for Telegram's ``ru``, ``uk``, ``be`` and ``kk`` and English
otherwise; ``/language`` switches it (kept in the conversation). A test checks that both catalogs
have the same keys and the same ``{placeholders}``.
"""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en", "ru")
_RUSSIAN_FOR = frozenset({"ru", "uk", "be", "kk"})

EN: dict[str, str] = {
    "welcome": "Hi! I make images, video and music with KIE.ai. Pick what to make, or type /help.",
    "help": (
        "Tap Image, Video or Music, pick a model, answer a few questions and tap Generate.\n"
        "/imagine <prompt> makes an image at once; /generate <model id> <prompt> uses a model "
        "with its defaults; /models lists them; /history shows your results; /cancel stops the "
        "current question or generation; /language switches between English and Russian."
    ),
    "menu.image": "Image",
    "menu.video": "Video",
    "menu.audio": "Music",
    "menu.history": "History",
    "menu.help": "Help",
    "kind.image": "Images",
    "kind.video": "Video",
    "kind.audio": "Music and audio",
    "models.pick": "{kind}: pick a model (page {page} of {pages}).",
    "button.prev": "« Back",
    "button.next": "More »",
    "button.back": "Back",
    "button.cancel": "Cancel",
    "button.start": "Start",
    "button.skip": "Skip",
    "button.done": "Done",
    "button.generate": "Generate",
    "button.confirm": "Confirm",
    "button.settings": "Settings",
    "button.repeat": "Repeat",
    "button.new_prompt": "Same settings, new prompt",
    "button.new": "New",
    "button.resend": "Send again",
    "card": "{title}\n{note}\nNeeds: {needs}\nDefaults: {defaults}",
    "card.nothing": "nothing else",
    "ask.text": "Send {field} as text (up to {max} characters).",
    "ask.enum": "Choose {field}:",
    "ask.number": "Send {field}: a number from {min} to {max}.",
    "ask.integer": "Choose or send {field}: a whole number from {min} to {max}.",
    "ask.image": "Send a photo for {field}.",
    "ask.images": "Send up to {max} photos for {field}, then tap Done ({count} so far).",
    "ask.video": "Send a video for {field}.",
    "ask.audio": "Send an audio file for {field}.",
    "ask.boolean": "{field}: on or off?",
    "bool.on": "on",
    "bool.off": "off",
    "wrong.text": "That is not text. {expected}",
    "wrong.too_long": "That is {length} characters; {field} takes at most {max}. Try a shorter one.",
    "wrong.too_short": "{field} needs at least {min} characters.",
    "wrong.number": "That is not a number from {min} to {max}. Send {field} again.",
    "wrong.choice": "Please use the buttons for {field}.",
    "wrong.media": "That is not what {field} needs. {expected}",
    "wrong.too_large": "That file is {size} MB; Telegram lets bots fetch at most 20 MB. Send a smaller one.",
    "wrong.upload": "I could not keep that file ({reason}). Try another one.",
    "settings": "{title}: tap a setting to change it, or Generate.\n{summary}",
    "confirm": "Ready to start {title} with:\n{summary}\nConfirm?",
    "started": "Started. I will send the result here.",
    "canceled": "Canceled.",
    "canceled.generation": "Stopped tracking {model}.",
    "nothing_to_cancel": "There is nothing to cancel.",
    "expired": "This menu has expired. Here is a fresh one.",
    "language.set": "I will speak English.",
    "history.empty": "You have no generations yet.",
    "history.page": "Your generations (page {page}):",
    "history.line": "{when} {model}: {state}",
    "history.gone": "That result is no longer available.",
    "limit.active": "You already have {count} generations running (the limit is {limit}). Wait for one to finish.",
    "limit.daily": "You have used today's {limit} generations. You can go on after {reset} UTC.",
    "access.denied": "Sorry, this bot is private.",
    "stats": (
        "Generations today: {today}\nIn 7 days: {week}\nBy model (7 days): {models}\n"
        "Active users (7 days): {users}\nKIE credits: {credits}\nInbox: {inbox}, outbox: {outbox}"
    ),
    "user.none": "No generations for {user}.",
    "user.line": "{when} {model}: {state} {error}",
    "usage.user": "Type /user <telegram user id>.",
    "usage.generate": "Type /generate <model id> <prompt>, for example /generate {example} a red fox in the snow.",
    "usage.imagine": "Type /imagine <prompt>, for example /imagine a red fox in the snow.",
    "unknown_model": "I don't know the model {model}. /models lists the ones I can use.",
    "needs_more": "{model} needs more than a prompt ({fields}). Pick it from the menu and I will ask for them.",
    "invalid": "That didn't work: {message}",
    "unavailable": "I can't start that right now; please try again in a minute.",
    "apology": "Sorry, something went wrong with your last message. Please try again.",
    "status.queued": "Queued: {model}",
    "status.submitted": "At KIE: {model}",
    "status.running": "Working: {model}",
    "status.running_progress": "Working: {model} ({percent}%)",
    "status.done": "Done: {model}",
    "status.failed": "Failed: {model}. {reason}",
    "status.timed_out": "Timed out: {model}. KIE gave no result in time.",
    "status.canceled": "Canceled: {model}.",
    "result.link": "Done: {model}. The file is too large to send here; download it: {url}",
    "state.queued": "queued",
    "state.submitted": "at KIE",
    "state.running": "working",
    "state.succeeded": "done",
    "state.failed": "failed",
    "state.timed_out": "timed out",
    "state.canceled": "canceled",
}

RU: dict[str, str] = {
    "welcome": "Привет! Я делаю картинки, видео и музыку с KIE.ai. Выберите, что сделать, или /help.",
    "help": (
        "Нажмите «Картинка», «Видео» или «Музыка», выберите модель, ответьте на пару вопросов и "
        "нажмите «Создать».\n/imagine <запрос> сразу делает картинку; /generate <модель> <запрос> "
        "запускает модель с настройками по умолчанию; /models — список моделей; /history — ваши "
        "результаты; /cancel — отменить текущий вопрос или генерацию; /language — English/русский."
    ),
    "menu.image": "Картинка",
    "menu.video": "Видео",
    "menu.audio": "Музыка",
    "menu.history": "История",
    "menu.help": "Помощь",
    "kind.image": "Картинки",
    "kind.video": "Видео",
    "kind.audio": "Музыка и звук",
    "models.pick": "{kind}: выберите модель (страница {page} из {pages}).",
    "button.prev": "« Назад",
    "button.next": "Ещё »",
    "button.back": "Назад",
    "button.cancel": "Отмена",
    "button.start": "Начать",
    "button.skip": "Пропустить",
    "button.done": "Готово",
    "button.generate": "Создать",
    "button.confirm": "Подтвердить",
    "button.settings": "Настройки",
    "button.repeat": "Повторить",
    "button.new_prompt": "Те же настройки, новый запрос",
    "button.new": "Новая",
    "button.resend": "Отправить снова",
    "card": "{title}\n{note}\nНужно: {needs}\nПо умолчанию: {defaults}",
    "card.nothing": "больше ничего",
    "ask.text": "Отправьте {field} текстом (до {max} символов).",
    "ask.enum": "Выберите {field}:",
    "ask.number": "Отправьте {field}: число от {min} до {max}.",
    "ask.integer": "Выберите или отправьте {field}: целое число от {min} до {max}.",
    "ask.image": "Отправьте фото для {field}.",
    "ask.images": "Отправьте до {max} фото для {field}, затем нажмите «Готово» (уже {count}).",
    "ask.video": "Отправьте видео для {field}.",
    "ask.audio": "Отправьте аудиофайл для {field}.",
    "ask.boolean": "{field}: включить или выключить?",
    "bool.on": "вкл",
    "bool.off": "выкл",
    "wrong.text": "Это не текст. {expected}",
    "wrong.too_long": "Здесь {length} символов, а {field} — не больше {max}. Попробуйте короче.",
    "wrong.too_short": "{field}: нужно хотя бы {min} символов.",
    "wrong.number": "Это не число от {min} до {max}. Отправьте {field} ещё раз.",
    "wrong.choice": "Для {field} используйте кнопки.",
    "wrong.media": "Это не подходит для {field}. {expected}",
    "wrong.too_large": "Файл весит {size} МБ, а бот может получить не больше 20 МБ. Отправьте файл поменьше.",
    "wrong.upload": "Не удалось сохранить файл ({reason}). Попробуйте другой.",
    "settings": "{title}: нажмите настройку, чтобы изменить её, или «Создать».\n{summary}",
    "confirm": "Запускаю {title} с параметрами:\n{summary}\nПодтвердить?",
    "started": "Запущено. Пришлю результат сюда.",
    "canceled": "Отменено.",
    "canceled.generation": "Больше не слежу за {model}.",
    "nothing_to_cancel": "Отменять нечего.",
    "expired": "Это меню устарело. Вот новое.",
    "language.set": "Буду говорить по-русски.",
    "history.empty": "У вас пока нет генераций.",
    "history.page": "Ваши генерации (страница {page}):",
    "history.line": "{when} {model}: {state}",
    "history.gone": "Этот результат больше недоступен.",
    "limit.active": "У вас уже идёт {count} генераций (предел {limit}). Дождитесь, пока одна закончится.",
    "limit.daily": "Сегодняшние {limit} генераций израсходованы. Можно продолжить после {reset} UTC.",
    "access.denied": "Извините, это закрытый бот.",
    "stats": (
        "Генераций сегодня: {today}\nЗа 7 дней: {week}\nПо моделям (7 дней): {models}\n"
        "Активных пользователей (7 дней): {users}\nКредиты KIE: {credits}\nВходящие: {inbox}, исходящие: {outbox}"
    ),
    "user.none": "У {user} нет генераций.",
    "user.line": "{when} {model}: {state} {error}",
    "usage.user": "Напишите /user <id пользователя Telegram>.",
    "usage.generate": "Напишите /generate <модель> <запрос>, например /generate {example} рыжая лиса в снегу.",
    "usage.imagine": "Напишите /imagine <запрос>, например /imagine рыжая лиса в снегу.",
    "unknown_model": "Я не знаю модель {model}. /models — список доступных.",
    "needs_more": "{model} нужно больше, чем запрос ({fields}). Выберите её в меню, и я спрошу.",
    "invalid": "Не получилось: {message}",
    "unavailable": "Сейчас не могу это запустить; попробуйте через минуту.",
    "apology": "Извините, с вашим последним сообщением что-то пошло не так. Попробуйте ещё раз.",
    "status.queued": "В очереди: {model}",
    "status.submitted": "Отправлено в KIE: {model}",
    "status.running": "Работаю: {model}",
    "status.running_progress": "Работаю: {model} ({percent}%)",
    "status.done": "Готово: {model}",
    "status.failed": "Не получилось: {model}. {reason}",
    "status.timed_out": "Время вышло: {model}. KIE не прислал результат вовремя.",
    "status.canceled": "Отменено: {model}.",
    "result.link": "Готово: {model}. Файл слишком большой для Telegram; скачать: {url}",
    "state.queued": "в очереди",
    "state.submitted": "в KIE",
    "state.running": "в работе",
    "state.succeeded": "готово",
    "state.failed": "ошибка",
    "state.timed_out": "время вышло",
    "state.canceled": "отменено",
}

CATALOGS: dict[str, dict[str, str]] = {"en": EN, "ru": RU}


def language_for(code: str | None) -> str:
    """The language for a Telegram ``language_code``: Russian for ru, uk, be, kk; else English."""
    base = (code or "").split("-", 1)[0].lower()
    return "ru" if base in _RUSSIAN_FOR else "en"


def t(lang: str, key: str, **values: Any) -> str:
    """The message ``key`` in ``lang`` (English when the language is unknown), filled in."""
    catalog = CATALOGS.get(lang, EN)
    return catalog[key].format(**values) if values else catalog[key]
