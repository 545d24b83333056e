"""The words of customers' emails in each language we write them in (en, bg, ru, kk). Placeholders are
`str.format` fields filled by `compose.py`; the templates (`templates/`) are shared by every language."""

from __future__ import annotations

from typing import Final

LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "greeting": "Hello {name},",
        "invoice_issued.subject": "Invoice {number} from {org}",
        "invoice_issued.intro": (
            "Your invoice {number} is attached as a PDF. Amount due: {amount_due}, by {due_date}."
        ),
        "proforma_issued.subject": "Proforma invoice {number} from {org}",
        "proforma_issued.intro": (
            "Your proforma invoice {number} is attached as a PDF. Please pay {amount_due} by "
            "{due_date}; the final invoice follows your payment."
        ),
        "credit_note_issued.subject": "Credit note {number} from {org}",
        "credit_note_issued.intro": (
            "A credit note {number} for {total} has been issued to you; it is attached as a PDF."
        ),
        "payment_receipt.subject": "Receipt for your payment to {org}",
        "payment_receipt.intro": "We received your payment of {amount} for {number}. Thank you!",
        "payment_failed.subject": "Payment for {number} failed",
        "payment_failed.intro": "We could not collect {amount_due} for {number} from your card.",
        "final_notice.subject": "Final notice: payment for {number}",
        "final_notice.intro": (
            "We could not collect {amount_due} for {number} from your card. This is our final notice: "
            "we will try one last time on {next_try}."
        ),
        "final_action.mark_uncollectible.subject": "We stopped collecting payment for {number}",
        "final_action.mark_uncollectible.intro": (
            "Our last try to collect {amount_due} for {number} failed, so we stopped trying "
            "automatically. The amount is still owed: please pay it online."
        ),
        "final_action.cancel_subscription.subject": (
            "Your subscription was cancelled: payment for {number} failed"
        ),
        "final_action.cancel_subscription.intro": (
            "Our last try to collect {amount_due} for {number} failed, so your subscription was "
            "cancelled. To continue, please pay what is owed and contact {org}."
        ),
        "card_expiring.subject": "Your card ending in {last4} expires soon",
        "card_expiring.intro": (
            "Your {brand} card ending in {last4} expires at the end of {expiry}. Please give us a new "
            "card before then so your service continues without interruption."
        ),
        "trial_ending.subject": "Your trial ends on {date}",
        "trial_ending.intro": (
            "Your trial ends on {date}. From then on your subscription is billed automatically."
        ),
        "renewal_upcoming.subject": "Your subscription renews on {date}",
        "renewal_upcoming.intro": (
            "Your yearly subscription renews on {date}. The invoice will follow on that day."
        ),
        "portal_login.subject": "Your sign-in link for {org}",
        "portal_login.intro": (
            "Use the button below to sign in to your billing portal at {org}. "
            "The link works once, until {until}."
        ),
        "portal_login.ignore": (
            "If you did not ask for it, ignore this email: nobody can sign in without the link."
        ),
        "portal_login.button": "Sign in",
        "reason": "Reason: {reason}",
        "next_try": "We will try again on {next_try}.",
        "no_retry": "We will not try again automatically.",
        "pay": "Pay now",
        "view": "View online",
        "update_card": "Update your card",
        "number": "Number",
        "total": "Total",
        "amount_due": "Amount due",
        "due_date": "Due date",
        "test_mode": "Test mode: this is not a valid tax document.",
        "sent_by": "Sent by {org} through Fiscus.",
        "unsubscribe": "Stop these reminders",
    },
    "bg": {
        "greeting": "Здравейте, {name},",
        "invoice_issued.subject": "Фактура {number} от {org}",
        "invoice_issued.intro": (
            "Фактура {number} е приложена като PDF. Сума за плащане: {amount_due}, до {due_date}."
        ),
        "proforma_issued.subject": "Проформа фактура {number} от {org}",
        "proforma_issued.intro": (
            "Проформа фактура {number} е приложена като PDF. Моля, платете {amount_due} до "
            "{due_date}; окончателната фактура ще последва плащането."
        ),
        "credit_note_issued.subject": "Кредитно известие {number} от {org}",
        "credit_note_issued.intro": (
            "Издадено ви е кредитно известие {number} за {total}; приложено е като PDF."
        ),
        "payment_receipt.subject": "Разписка за плащането ви към {org}",
        "payment_receipt.intro": "Получихме плащането ви от {amount} за {number}. Благодарим ви!",
        "payment_failed.subject": "Неуспешно плащане за {number}",
        "payment_failed.intro": "Не успяхме да съберем {amount_due} за {number} от картата ви.",
        "final_notice.subject": "Последно напомняне: плащане за {number}",
        "final_notice.intro": (
            "Не успяхме да съберем {amount_due} за {number} от картата ви. Това е последно напомняне: "
            "ще опитаме за последен път на {next_try}."
        ),
        "final_action.mark_uncollectible.subject": "Спряхме събирането на плащането за {number}",
        "final_action.mark_uncollectible.intro": (
            "Последният ни опит да съберем {amount_due} за {number} беше неуспешен и спряхме "
            "автоматичните опити. Сумата остава дължима: моля, платете я онлайн."
        ),
        "final_action.cancel_subscription.subject": (
            "Абонаментът ви е прекратен: плащането за {number} беше неуспешно"
        ),
        "final_action.cancel_subscription.intro": (
            "Последният ни опит да съберем {amount_due} за {number} беше неуспешен и абонаментът ви "
            "беше прекратен. За да продължите, моля, платете дължимата сума и се свържете с {org}."
        ),
        "card_expiring.subject": "Картата ви, завършваща на {last4}, изтича скоро",
        "card_expiring.intro": (
            "Картата ви {brand}, завършваща на {last4}, изтича в края на {expiry}. Моля, дайте ни "
            "нова карта преди това, за да продължи услугата без прекъсване."
        ),
        "trial_ending.subject": "Пробният ви период изтича на {date}",
        "trial_ending.intro": (
            "Пробният ви период изтича на {date}. След това абонаментът ви се таксува автоматично."
        ),
        "renewal_upcoming.subject": "Абонаментът ви се подновява на {date}",
        "renewal_upcoming.intro": (
            "Годишният ви абонамент се подновява на {date}. Фактурата ще последва в същия ден."
        ),
        "portal_login.subject": "Вашата връзка за вход в {org}",
        "portal_login.intro": (
            "Използвайте бутона по-долу, за да влезете в портала за плащания на {org}. "
            "Връзката важи еднократно, до {until}."
        ),
        "portal_login.ignore": (
            "Ако не сте я поискали, пренебрегнете това писмо: без връзката никой не може да влезе."
        ),
        "portal_login.button": "Вход",
        "reason": "Причина: {reason}",
        "next_try": "Ще опитаме отново на {next_try}.",
        "no_retry": "Няма да опитаме отново автоматично.",
        "pay": "Платете сега",
        "view": "Вижте онлайн",
        "update_card": "Обновете картата си",
        "number": "Номер",
        "total": "Общо",
        "amount_due": "Сума за плащане",
        "due_date": "Падеж",
        "test_mode": "Тестов режим: това не е валиден данъчен документ.",
        "sent_by": "Изпратено от {org} чрез Fiscus.",
        "unsubscribe": "Спрете тези напомняния",
    },
    "ru": {
        "greeting": "Здравствуйте, {name}!",
        "invoice_issued.subject": "Счёт {number} от {org}",
        "invoice_issued.intro": (
            "Счёт {number} приложен в формате PDF. К оплате: {amount_due}, до {due_date}."
        ),
        "proforma_issued.subject": "Счёт на предоплату {number} от {org}",
        "proforma_issued.intro": (
            "Счёт на предоплату {number} приложен в формате PDF. Пожалуйста, оплатите {amount_due} до "
            "{due_date}; окончательный счёт придёт после оплаты."
        ),
        "credit_note_issued.subject": "Кредит-нота {number} от {org}",
        "credit_note_issued.intro": (
            "Вам выставлена кредит-нота {number} на {total}; она приложена в формате PDF."
        ),
        "payment_receipt.subject": "Квитанция об оплате для {org}",
        "payment_receipt.intro": "Мы получили ваш платёж {amount} по {number}. Спасибо!",
        "payment_failed.subject": "Оплата по {number} не прошла",
        "payment_failed.intro": "Нам не удалось списать {amount_due} по {number} с вашей карты.",
        "final_notice.subject": "Последнее уведомление: оплата по {number}",
        "final_notice.intro": (
            "Нам не удалось списать {amount_due} по {number} с вашей карты. Это последнее "
            "уведомление: последняя попытка будет {next_try}."
        ),
        "final_action.mark_uncollectible.subject": "Мы прекратили списание оплаты за {number}",
        "final_action.mark_uncollectible.intro": (
            "Последняя попытка списать {amount_due} за {number} не удалась, и мы прекратили "
            "автоматические попытки. Сумма по-прежнему к оплате: пожалуйста, оплатите её онлайн."
        ),
        "final_action.cancel_subscription.subject": "Ваша подписка отменена: оплата за {number} не прошла",
        "final_action.cancel_subscription.intro": (
            "Последняя попытка списать {amount_due} за {number} не удалась, и ваша подписка отменена. "
            "Чтобы продолжить, оплатите задолженность и свяжитесь с {org}."
        ),
        "card_expiring.subject": "Срок действия карты с окончанием {last4} скоро истекает",
        "card_expiring.intro": (
            "Срок действия вашей карты {brand} с окончанием {last4} истекает в конце {expiry}. "
            "Пожалуйста, укажите новую карту заранее, чтобы обслуживание не прерывалось."
        ),
        "trial_ending.subject": "Пробный период заканчивается {date}",
        "trial_ending.intro": (
            "Ваш пробный период заканчивается {date}. После этого подписка оплачивается автоматически."
        ),
        "renewal_upcoming.subject": "Подписка продлевается {date}",
        "renewal_upcoming.intro": "Ваша годовая подписка продлевается {date}. Счёт придёт в тот же день.",
        "portal_login.subject": "Ваша ссылка для входа в {org}",
        "portal_login.intro": (
            "Нажмите кнопку ниже, чтобы войти в платёжный кабинет {org}. "
            "Ссылка действует один раз, до {until}."
        ),
        "portal_login.ignore": (
            "Если вы её не запрашивали, просто проигнорируйте это письмо: без ссылки никто не сможет войти."
        ),
        "portal_login.button": "Войти",
        "reason": "Причина: {reason}",
        "next_try": "Мы попробуем снова {next_try}.",
        "no_retry": "Автоматических попыток больше не будет.",
        "pay": "Оплатить",
        "view": "Открыть онлайн",
        "update_card": "Обновить карту",
        "number": "Номер",
        "total": "Итого",
        "amount_due": "К оплате",
        "due_date": "Срок оплаты",
        "test_mode": "Тестовый режим: это не налоговый документ.",
        "sent_by": "Отправлено {org} через Fiscus.",
        "unsubscribe": "Отписаться от напоминаний",
    },
    "kk": {
        "greeting": "Сәлеметсіз бе, {name}!",
        "invoice_issued.subject": "{org} ұсынған {number} шот",
        "invoice_issued.intro": (
            "{number} шот PDF түрінде тіркелген. Төленетін сома: {amount_due}, {due_date} дейін."
        ),
        "proforma_issued.subject": "{org} ұсынған {number} алдын ала төлем шоты",
        "proforma_issued.intro": (
            "{number} алдын ала төлем шоты PDF түрінде тіркелген. {due_date} дейін {amount_due} "
            "төлеңіз; түпкілікті шот төлемнен кейін келеді."
        ),
        "credit_note_issued.subject": "{org} ұсынған {number} кредиттік хабарлама",
        "credit_note_issued.intro": (
            "Сізге {total} сомасына {number} кредиттік хабарлама берілді; ол PDF түрінде тіркелген."
        ),
        "payment_receipt.subject": "{org} үшін төлеміңіздің түбіртегі",
        "payment_receipt.intro": "{number} бойынша {amount} төлеміңізді алдық. Рахмет!",
        "payment_failed.subject": "{number} бойынша төлем өтпеді",
        "payment_failed.intro": "{number} бойынша {amount_due} сомасын картаңыздан ала алмадық.",
        "final_notice.subject": "Соңғы ескерту: {number} бойынша төлем",
        "final_notice.intro": (
            "{number} бойынша {amount_due} сомасын картаңыздан ала алмадық. Бұл соңғы ескерту: соңғы "
            "әрекет {next_try} жасалады."
        ),
        "final_action.mark_uncollectible.subject": "{number} бойынша төлемді алуды тоқтаттық",
        "final_action.mark_uncollectible.intro": (
            "{number} үшін {amount_due} сомасын алудың соңғы әрекеті сәтсіз аяқталды, сондықтан біз "
            "автоматты әрекеттерді тоқтаттық. Сома әлі де төленуі тиіс: оны онлайн төлеңіз."
        ),
        "final_action.cancel_subscription.subject": "Жазылымыңыз тоқтатылды: {number} бойынша төлем өтпеді",
        "final_action.cancel_subscription.intro": (
            "{number} үшін {amount_due} сомасын алудың соңғы әрекеті сәтсіз аяқталды, сондықтан "
            "жазылымыңыз тоқтатылды. Жалғастыру үшін қарызды төлеп, {org} ұйымына хабарласыңыз."
        ),
        "card_expiring.subject": "{last4} деп аяқталатын картаңыздың мерзімі жақында бітеді",
        "card_expiring.intro": (
            "{last4} деп аяқталатын {brand} картаңыздың мерзімі {expiry} соңында бітеді. Қызмет "
            "үзілмеуі үшін жаңа картаны алдын ала беріңіз."
        ),
        "trial_ending.subject": "Сынақ мерзіміңіз {date} аяқталады",
        "trial_ending.intro": (
            "Сынақ мерзіміңіз {date} аяқталады. Одан кейін жазылымыңыз автоматты түрде төленеді."
        ),
        "renewal_upcoming.subject": "Жазылымыңыз {date} жаңартылады",
        "renewal_upcoming.intro": "Жылдық жазылымыңыз {date} жаңартылады. Шот сол күні келеді.",
        "portal_login.subject": "{org} жүйесіне кіру сілтемеңіз",
        "portal_login.intro": (
            "{org} төлем порталына кіру үшін төмендегі батырманы басыңыз. "
            "Сілтеме бір рет, {until} дейін жарамды."
        ),
        "portal_login.ignore": (
            "Егер сіз оны сұрамаған болсаңыз, бұл хатты елемеңіз: сілтемесіз ешкім кіре алмайды."
        ),
        "portal_login.button": "Кіру",
        "reason": "Себебі: {reason}",
        "next_try": "Біз {next_try} қайта әрекет жасаймыз.",
        "no_retry": "Автоматты түрде қайта әрекет жасалмайды.",
        "pay": "Қазір төлеу",
        "view": "Онлайн қарау",
        "update_card": "Картаны жаңарту",
        "number": "Нөмірі",
        "total": "Барлығы",
        "amount_due": "Төленетін сома",
        "due_date": "Төлеу мерзімі",
        "test_mode": "Сынақ режимі: бұл жарамды салық құжаты емес.",
        "sent_by": "{org} Fiscus арқылы жіберді.",
        "unsubscribe": "Бұл еске салуларды тоқтату",
    },
}
