"""More portal texts in en, bg, ru and kk: current usage, list pages, and the messages that replace
the use cases' English errors (`errors.py`). Kept apart from `labels.py` only for its size."""

from __future__ import annotations

from typing import Final

MORE_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "usage_heading": "Usage so far",
        "usage_text": "{amount} before tax for {period}, invoiced after the period ends",
        "usage_caption": "Usage this period",
        "metric": "Metric",
        "group": "Group",
        "usage_quantity": "Quantity",
        "amount_so_far": "Amount so far",
        "no_usage": "No usage recorded yet this period.",
        "next_with_usage": "{amount} for {period}, plus usage so far: {usage}",
        "older": "Older",
        "newer": "Newer",
        "pages": "More pages",
        "err_required": "Please fill this in.",
        "err_too_long": "Please use at most {n} characters.",
        "err_email": "Please enter a valid email address.",
        "err_vat_id": (
            "This is not a valid VAT ID for your country. Use the country prefix, e.g. BG123456789."
        ),
        "err_vat_unregistered": "This VAT ID is not registered according to the EU VIES service.",
        "err_quantity": "Please enter a whole number from 1 to 10,000.",
        "err_plan": "This plan cannot be chosen for your subscription.",
        "err_reason": "Please choose a reason.",
        "err_invalid": "Please check this value.",
        "err_state": "This cannot be done in the subscription's current state.",
        "err_conflict": "This cannot be done right now. Please reload the page and try again.",
    },
    "bg": {
        "usage_heading": "Потребление досега",
        "usage_text": "{amount} без данъци за {period}, фактурира се след края на периода",
        "usage_caption": "Потребление през периода",
        "metric": "Показател",
        "group": "Група",
        "usage_quantity": "Количество",
        "amount_so_far": "Сума досега",
        "no_usage": "Все още няма отчетено потребление за периода.",
        "next_with_usage": "{amount} за {period}, плюс потреблението досега: {usage}",
        "older": "По-стари",
        "newer": "По-нови",
        "pages": "Още страници",
        "err_required": "Моля, попълнете полето.",
        "err_too_long": "Моля, използвайте най-много {n} знака.",
        "err_email": "Моля, въведете валиден адрес на е-поща.",
        "err_vat_id": (
            "Това не е валиден ДДС номер за вашата държава. Използвайте префикса, напр. BG123456789."
        ),
        "err_vat_unregistered": "Този ДДС номер не е регистриран според услугата VIES на ЕС.",
        "err_quantity": "Моля, въведете цяло число от 1 до 10 000.",
        "err_plan": "Този план не може да бъде избран за абонамента ви.",
        "err_reason": "Моля, изберете причина.",
        "err_invalid": "Моля, проверете стойността.",
        "err_state": "Това не може да се направи при текущото състояние на абонамента.",
        "err_conflict": (
            "Това не може да се направи в момента. Моля, презаредете страницата и опитайте отново."
        ),
    },
    "ru": {
        "usage_heading": "Потребление на текущий момент",
        "usage_text": "{amount} без налогов за {period}, счёт выставляется после окончания периода",
        "usage_caption": "Потребление за период",
        "metric": "Показатель",
        "group": "Группа",
        "usage_quantity": "Количество",
        "amount_so_far": "Сумма на текущий момент",
        "no_usage": "За этот период потребление ещё не учтено.",
        "next_with_usage": "{amount} за {period}, плюс потребление на текущий момент: {usage}",
        "older": "Более ранние",
        "newer": "Более новые",
        "pages": "Другие страницы",
        "err_required": "Пожалуйста, заполните это поле.",
        "err_too_long": "Пожалуйста, используйте не более {n} символов.",
        "err_email": "Пожалуйста, введите правильный адрес электронной почты.",
        "err_vat_id": (
            "Это неверный налоговый номер для вашей страны. Укажите префикс страны, например BG123456789."
        ),
        "err_vat_unregistered": "Этот номер НДС не зарегистрирован по данным службы VIES ЕС.",
        "err_quantity": "Пожалуйста, введите целое число от 1 до 10 000.",
        "err_plan": "Этот тариф нельзя выбрать для вашей подписки.",
        "err_reason": "Пожалуйста, выберите причину.",
        "err_invalid": "Пожалуйста, проверьте значение.",
        "err_state": "Это невозможно при текущем состоянии подписки.",
        "err_conflict": "Сейчас это невозможно. Пожалуйста, обновите страницу и попробуйте снова.",
    },
    "kk": {
        "usage_heading": "Қазіргі тұтыну",
        "usage_text": "{period} үшін салықсыз {amount}, кезең аяқталған соң шот жазылады",
        "usage_caption": "Кезеңдегі тұтыну",
        "metric": "Көрсеткіш",
        "group": "Топ",
        "usage_quantity": "Саны",
        "amount_so_far": "Қазіргі сома",
        "no_usage": "Бұл кезеңде әлі тұтыну тіркелмеген.",
        "next_with_usage": "{period} үшін {amount}, оған қоса қазіргі тұтыну: {usage}",
        "older": "Ертерек",
        "newer": "Жаңарақтары",
        "pages": "Басқа беттер",
        "err_required": "Осы өрісті толтырыңыз.",
        "err_too_long": "Ең көбі {n} таңба пайдаланыңыз.",
        "err_email": "Дұрыс электрондық пошта мекенжайын енгізіңіз.",
        "err_vat_id": (
            "Бұл сіздің еліңіз үшін жарамды салық нөмірі емес. Ел префиксін қосыңыз, мысалы BG123456789."
        ),
        "err_vat_unregistered": "Бұл ҚҚС нөмірі ЕО-ның VIES қызметінде тіркелмеген.",
        "err_quantity": "1-ден 10 000-ға дейінгі бүтін санды енгізіңіз.",
        "err_plan": "Бұл тарифті жазылымыңыз үшін таңдауға болмайды.",
        "err_reason": "Себепті таңдаңыз.",
        "err_invalid": "Мәнді тексеріңіз.",
        "err_state": "Жазылымның қазіргі күйінде мұны істеу мүмкін емес.",
        "err_conflict": "Мұны қазір істеу мүмкін емес. Бетті жаңартып, қайталап көріңіз.",
    },
}
