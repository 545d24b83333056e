"""Texts of the hosted payment page in each document language; the document itself (parties, lines,
VAT, totals) is labelled by `fiscus.documents.labels`, as on the PDF. A missing language or key falls
back to English."""

from __future__ import annotations

from typing import Final

from fiscus.web.i18n import surface_labels
from fiscus.web.promo_labels import promo_labels

PAGE_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "page_title": "Pay {title} {number}",
        "from": "from {seller}",
        "pay_heading": "Pay by card",
        "secure_note": (
            "Your card details go straight to the payment processor; the seller's billing system never "
            "sees your card number."
        ),
        "holder": "Name on card",
        "card_number": "Card number",
        "card_number_hint": "The 12 to 19 digits on the front of the card.",
        "expiry": "Expiry date",
        "exp_month": "Month (MM)",
        "exp_year": "Year (YYYY)",
        "cvc": "Security code (CVC)",
        "cvc_hint": "3 or 4 digits, on the back of the card.",
        "pay_button": "Pay {amount}",
        "paid_heading": "Paid",
        "paid_text": "Thank you: this document is paid.",
        "paid_as_invoice": "Thank you: paid. The proforma invoice became invoice {number}.",
        "receipt": "Receipt",
        "receipt_amount": "Amount paid",
        "receipt_card": "Card",
        "receipt_date": "Date",
        "receipt_reference": "Payment reference",
        "receipt_invoice": "Invoice",
        "card_ending": "{brand} ending in {last4}",
        "declined_heading": "The payment was declined",
        "declined_text": "Nothing has been charged. You can try again with the same or another card.",
        "error_heading": "The card could not be used",
        "error_text": "Nothing has been charged. Please check the details and try again.",
        "error_code": "Code",
        "confirming_heading": "We are confirming your payment",
        "confirming_text": (
            "The payment processor has not answered yet. Please do not pay again: this page refreshes "
            "by itself and shows the result as soon as it is known."
        ),
        "refresh": "Refresh",
        "authorized_heading": "Payment authorised",
        "authorized_text": "{amount} is reserved on your card; the seller will collect it.",
        "received_heading": "Payment received",
        "received_text": "Thank you. {amount} remains to be paid.",
        "unavailable": "Card payment is not available for this document.",
        "void_text": "This document was voided: there is nothing to pay.",
        "converted_text": "This proforma invoice was replaced by invoice {number}.",
        "converted_link": "Pay invoice {number}",
        "replaced_text": (
            "This proforma invoice was replaced by proforma invoice {number}, with your promotion code."
        ),
        "replaced_link": "Open proforma invoice {number}",
        "not_found_title": "Payment link not valid",
        "not_found_text": (
            "This payment link is not valid or no longer in use. Please check the link you received, "
            "or contact the seller."
        ),
        "expired_title": "This payment form has expired",
        "expired_text": "Nothing has been charged. Please open the payment page again and enter your card.",
        "back": "Back to the payment page",
        "error_card_rejected": "This card cannot be used for this payment.",
        "error_provider_unavailable": (
            "The payment processor cannot be reached right now. Nothing has been charged; please try "
            "again in a few minutes."
        ),
        "lines": "Items",
        "document_details": "Document",
    },
    "bg": {
        "page_title": "Плащане: {title} {number}",
        "from": "от {seller}",
        "pay_heading": "Плащане с карта",
        "secure_note": (
            "Данните на картата отиват направо при обработващия плащането; системата за фактуриране на "
            "доставчика никога не вижда номера на картата ви."
        ),
        "holder": "Име върху картата",
        "card_number": "Номер на картата",
        "card_number_hint": "От 12 до 19 цифри от лицевата страна на картата.",
        "expiry": "Валидност",
        "exp_month": "Месец (ММ)",
        "exp_year": "Година (ГГГГ)",
        "cvc": "Код за сигурност (CVC)",
        "cvc_hint": "3 или 4 цифри на гърба на картата.",
        "pay_button": "Платете {amount}",
        "paid_heading": "Платено",
        "paid_text": "Благодарим ви: документът е платен.",
        "paid_as_invoice": "Благодарим ви: платено. Проформата стана фактура {number}.",
        "receipt": "Разписка",
        "receipt_amount": "Платена сума",
        "receipt_card": "Карта",
        "receipt_date": "Дата",
        "receipt_reference": "Номер на плащането",
        "receipt_invoice": "Фактура",
        "card_ending": "{brand}, завършваща на {last4}",
        "declined_heading": "Плащането е отказано",
        "declined_text": "Нищо не е изтеглено. Можете да опитате отново със същата или друга карта.",
        "error_heading": "Картата не може да бъде използвана",
        "error_text": "Нищо не е изтеглено. Проверете данните и опитайте отново.",
        "error_code": "Код",
        "confirming_heading": "Потвърждаваме плащането ви",
        "confirming_text": (
            "Обработващият плащането още не е отговорил. Моля, не плащайте отново: страницата се "
            "опреснява сама и ще покаже резултата веднага щом е известен."
        ),
        "refresh": "Опресняване",
        "authorized_heading": "Плащането е разрешено",
        "authorized_text": "{amount} е блокирана по картата ви; доставчикът ще я събере.",
        "received_heading": "Плащането е получено",
        "received_text": "Благодарим ви. Остават за плащане {amount}.",
        "unavailable": "Плащане с карта не е възможно за този документ.",
        "void_text": "Документът е анулиран: няма нищо за плащане.",
        "converted_text": "Тази проформа е заменена с фактура {number}.",
        "converted_link": "Платете фактура {number}",
        "replaced_text": "Тази проформа е заменена с проформа {number}, с вашия промокод.",
        "replaced_link": "Отворете проформа {number}",
        "not_found_title": "Невалидна връзка за плащане",
        "not_found_text": (
            "Тази връзка за плащане не е валидна или вече не се използва. Проверете получената връзка "
            "или се свържете с доставчика."
        ),
        "expired_title": "Формата за плащане е изтекла",
        "expired_text": "Нищо не е изтеглено. Отворете отново страницата за плащане и въведете картата.",
        "back": "Към страницата за плащане",
        "error_card_rejected": "Тази карта не може да се използва за това плащане.",
        "error_provider_unavailable": (
            "Обработващият плащането в момента е недостъпен. Нищо не е изтеглено; опитайте отново след "
            "няколко минути."
        ),
        "lines": "Позиции",
        "document_details": "Документ",
    },
    "ru": {
        "page_title": "Оплата: {title} {number}",
        "from": "от {seller}",
        "pay_heading": "Оплата картой",
        "secure_note": (
            "Данные карты передаются напрямую платёжному процессору; система выставления счетов "
            "продавца никогда не видит номер вашей карты."
        ),
        "holder": "Имя на карте",
        "card_number": "Номер карты",
        "card_number_hint": "От 12 до 19 цифр на лицевой стороне карты.",
        "expiry": "Срок действия",
        "exp_month": "Месяц (ММ)",
        "exp_year": "Год (ГГГГ)",
        "cvc": "Код безопасности (CVC)",
        "cvc_hint": "3 или 4 цифры на обороте карты.",
        "pay_button": "Оплатить {amount}",
        "paid_heading": "Оплачено",
        "paid_text": "Спасибо: документ оплачен.",
        "paid_as_invoice": "Спасибо: оплачено. Счёт на оплату стал счётом-фактурой {number}.",
        "receipt": "Квитанция",
        "receipt_amount": "Оплаченная сумма",
        "receipt_card": "Карта",
        "receipt_date": "Дата",
        "receipt_reference": "Номер платежа",
        "receipt_invoice": "Счёт-фактура",
        "card_ending": "{brand}, оканчивается на {last4}",
        "declined_heading": "Платёж отклонён",
        "declined_text": "Ничего не списано. Можно попробовать снова с этой же или другой картой.",
        "error_heading": "Карту нельзя использовать",
        "error_text": "Ничего не списано. Проверьте данные и попробуйте снова.",
        "error_code": "Код",
        "confirming_heading": "Мы подтверждаем ваш платёж",
        "confirming_text": (
            "Платёжный процессор ещё не ответил. Пожалуйста, не платите повторно: страница обновляется "
            "сама и покажет результат, как только он станет известен."
        ),
        "refresh": "Обновить",
        "authorized_heading": "Платёж авторизован",
        "authorized_text": "{amount} заблокировано на вашей карте; продавец спишет эту сумму.",
        "received_heading": "Платёж получен",
        "received_text": "Спасибо. Осталось оплатить {amount}.",
        "unavailable": "Оплата картой для этого документа недоступна.",
        "void_text": "Документ аннулирован: оплачивать нечего.",
        "converted_text": "Этот счёт на оплату заменён счётом-фактурой {number}.",
        "converted_link": "Оплатить счёт-фактуру {number}",
        "replaced_text": "Этот счёт на оплату заменён счётом на оплату {number} с вашим промокодом.",
        "replaced_link": "Открыть счёт на оплату {number}",
        "not_found_title": "Ссылка для оплаты недействительна",
        "not_found_text": (
            "Эта ссылка для оплаты недействительна или больше не используется. Проверьте полученную "
            "ссылку или свяжитесь с продавцом."
        ),
        "expired_title": "Срок действия формы оплаты истёк",
        "expired_text": "Ничего не списано. Откройте страницу оплаты снова и введите данные карты.",
        "back": "К странице оплаты",
        "error_card_rejected": "Эту карту нельзя использовать для этого платежа.",
        "error_provider_unavailable": (
            "Платёжный процессор сейчас недоступен. Ничего не списано; попробуйте снова через "
            "несколько минут."
        ),
        "lines": "Позиции",
        "document_details": "Документ",
    },
    "kk": {
        "page_title": "Төлем: {title} {number}",
        "from": "{seller}",
        "pay_heading": "Картамен төлеу",
        "secure_note": (
            "Карта деректері тікелей төлем өңдеушісіне жіберіледі; сатушының шот жүйесі карта нөміріңізді "
            "ешқашан көрмейді."
        ),
        "holder": "Картадағы аты-жөні",
        "card_number": "Карта нөмірі",
        "card_number_hint": "Картаның алдыңғы бетіндегі 12–19 сан.",
        "expiry": "Жарамдылық мерзімі",
        "exp_month": "Ай (АА)",
        "exp_year": "Жыл (ЖЖЖЖ)",
        "cvc": "Қауіпсіздік коды (CVC)",
        "cvc_hint": "Картаның артқы бетіндегі 3 немесе 4 сан.",
        "pay_button": "{amount} төлеу",
        "paid_heading": "Төленді",
        "paid_text": "Рақмет: құжат төленді.",
        "paid_as_invoice": "Рақмет: төленді. Төлем шоты {number} шот-фактурасына айналды.",
        "receipt": "Түбіртек",
        "receipt_amount": "Төленген сома",
        "receipt_card": "Карта",
        "receipt_date": "Күні",
        "receipt_reference": "Төлем нөмірі",
        "receipt_invoice": "Шот-фактура",
        "card_ending": "{brand}, соңы {last4}",
        "declined_heading": "Төлем қабылданбады",
        "declined_text": "Ештеңе алынған жоқ. Осы немесе басқа картамен қайталап көріңіз.",
        "error_heading": "Картаны пайдалану мүмкін емес",
        "error_text": "Ештеңе алынған жоқ. Деректерді тексеріп, қайталап көріңіз.",
        "error_code": "Коды",
        "confirming_heading": "Төлеміңізді растап жатырмыз",
        "confirming_text": (
            "Төлем өңдеушісі әлі жауап бермеді. Қайта төлемеңіз: бет өздігінен жаңарып, нәтиже белгілі "
            "болған сәтте көрсетеді."
        ),
        "refresh": "Жаңарту",
        "authorized_heading": "Төлем рұқсат етілді",
        "authorized_text": "{amount} картаңызда бұғатталды; сатушы оны алады.",
        "received_heading": "Төлем алынды",
        "received_text": "Рақмет. Төлеуге {amount} қалды.",
        "unavailable": "Бұл құжат үшін картамен төлеу қолжетімсіз.",
        "void_text": "Құжат жойылды: төлейтін ештеңе жоқ.",
        "converted_text": "Бұл төлем шоты {number} шот-фактурасымен ауыстырылды.",
        "converted_link": "{number} шот-фактурасын төлеу",
        "replaced_text": "Бұл төлем шоты промокодыңызбен {number} төлем шотымен ауыстырылды.",
        "replaced_link": "{number} төлем шотын ашу",
        "not_found_title": "Төлем сілтемесі жарамсыз",
        "not_found_text": (
            "Бұл төлем сілтемесі жарамсыз немесе енді қолданылмайды. Алған сілтемеңізді тексеріңіз "
            "немесе сатушымен байланысыңыз."
        ),
        "expired_title": "Төлем формасының мерзімі өтті",
        "expired_text": "Ештеңе алынған жоқ. Төлем бетін қайта ашып, картаны енгізіңіз.",
        "back": "Төлем бетіне оралу",
        "error_card_rejected": "Бұл картаны осы төлем үшін пайдалану мүмкін емес.",
        "error_provider_unavailable": (
            "Төлем өңдеушісі қазір қолжетімсіз. Ештеңе алынған жоқ; бірнеше минуттан кейін қайталап көріңіз."
        ),
        "lines": "Позициялар",
        "document_details": "Құжат",
    },
}


DECLINE_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "insufficient_funds": "The card has insufficient funds.",
        "do_not_honor": "The card issuer declined the payment. Please contact your bank or use another card.",
        "expired_card": "The card has expired.",
        "processing_error": "The card could not be processed. Please try again.",
        "card_declined": "The card was declined.",
        "incorrect_cvc": "The security code (CVC) is incorrect.",
        "lost_card": "The card was reported lost.",
        "stolen_card": "The card was reported stolen.",
        "fraudulent": "The payment was declined as suspected fraud.",
        "generic_decline": "The card was declined.",
    },
    "bg": {
        "insufficient_funds": "Недостатъчна наличност по картата.",
        "do_not_honor": (
            "Банката издател отказа плащането. Свържете се с банката си или използвайте друга карта."
        ),
        "expired_card": "Картата е с изтекла валидност.",
        "processing_error": "Картата не можа да бъде обработена. Моля, опитайте отново.",
        "card_declined": "Картата е отказана.",
        "incorrect_cvc": "Кодът за сигурност (CVC) е грешен.",
        "lost_card": "Картата е обявена за изгубена.",
        "stolen_card": "Картата е обявена за открадната.",
        "fraudulent": "Плащането е отказано поради съмнение за измама.",
        "generic_decline": "Картата е отказана.",
    },
    "ru": {
        "insufficient_funds": "На карте недостаточно средств.",
        "do_not_honor": "Банк-эмитент отклонил платёж. Обратитесь в свой банк или используйте другую карту.",
        "expired_card": "Срок действия карты истёк.",
        "processing_error": "Не удалось обработать карту. Попробуйте ещё раз.",
        "card_declined": "Карта отклонена.",
        "incorrect_cvc": "Неверный код безопасности (CVC).",
        "lost_card": "Карта заявлена как утерянная.",
        "stolen_card": "Карта заявлена как украденная.",
        "fraudulent": "Платёж отклонён по подозрению в мошенничестве.",
        "generic_decline": "Карта отклонена.",
    },
    "kk": {
        "insufficient_funds": "Картада қаражат жеткіліксіз.",
        "do_not_honor": (
            "Карта шығарған банк төлемді қабылдамады. "
            "Банкіңізге хабарласыңыз немесе басқа картаны пайдаланыңыз."
        ),
        "expired_card": "Картаның мерзімі өтіп кеткен.",
        "processing_error": "Картаны өңдеу мүмкін болмады. Қайталап көріңіз.",
        "card_declined": "Карта қабылданбады.",
        "incorrect_cvc": "Қауіпсіздік коды (CVC) қате.",
        "lost_card": "Карта жоғалған деп хабарланған.",
        "stolen_card": "Карта ұрланған деп хабарланған.",
        "fraudulent": "Төлем алаяқтық күдігімен қабылданбады.",
        "generic_decline": "Карта қабылданбады.",
    },
}
"""Payment-provider decline codes in the customer's language; the provider's own text (in English) is
shown only for a code not listed here."""


def decline_message(language: str, code: str, provider_message: str) -> str:
    """The customer's-language text of a decline `code`, else the provider's own message."""
    table = DECLINE_LABELS.get(language, DECLINE_LABELS["en"])
    return table.get(code) or DECLINE_LABELS["en"].get(code) or provider_message


def page_labels(language: str) -> dict[str, str]:
    """The document's labels (as printed on the PDF) plus the page's own, in `language`."""
    return {**surface_labels(PAGE_LABELS, language), **promo_labels(language)}
