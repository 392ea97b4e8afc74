// sd-webui-lora-trainer: browser-side helpers for the Train LoRA tab.
// Inside A1111 this file is loaded for every page; standalone, the app runs it once on load.
// Only elements with `lora_trainer_` ids are touched, plus A1111's own txt2img prompt and
// Lora-tab refresh buttons.

(function () {
    const POLL_MS = 1500;        // refresh pace while a page shows the tab
    const STALL_MS = 10000;      // click again if an answer never came

    function root() {
        return typeof gradioApp === 'function' ? gradioApp() : document;
    }

    function visible(el) {
        return !!el && el.offsetParent !== null && document.visibilityState === 'visible';
    }

    // Put `<lora:name:weight>, trigger` into txt2img's prompt and switch to that tab, with
    // A1111's own helpers (updateInput, switch_to_txt2img) so gradio sees the change.
    // Bound to the button with _js: it gets the values of the inputs (prompt, outcome) and returns
    // one value per input, which the Python side (result_section.send_message) turns into the
    // message under the button: "sent", or why not ("no-prompt": no succeeded job yet;
    // "no-txt2img": no txt2img on this page, e.g. the standalone app).
    function loraTrainerSendToTxt2img(text, _outcome) {
        text = (text || '').trim();
        if (!text) return [text, 'no-prompt'];
        const prompt = root().querySelector('#txt2img_prompt textarea');
        if (!prompt) return [text, 'no-txt2img'];
        const current = prompt.value.trim();
        if (!current.includes(text)) prompt.value = current ? `${current}, ${text}` : text;
        if (typeof updateInput === 'function') updateInput(prompt);
        else prompt.dispatchEvent(new Event('input', {bubbles: true}));
        if (typeof switch_to_txt2img === 'function') switch_to_txt2img();
        return [text, 'sent'];
    }

    // After a LoRA is installed: refresh A1111's Lora cards in txt2img and img2img (the hidden
    // gradio buttons behind the extra-networks refresh control).
    function refreshLoraTabs() {
        for (const tab of ['txt2img', 'img2img']) {
            const button = root().querySelector(`#${tab}_lora_extra_refresh_internal`);
            if (button) button.click();
        }
    }

    let lastStamp = null;
    let lastClick = 0;
    let lastInstalled = null;

    function tick() {
        const app = root();
        const refresh = app.querySelector('#lora_trainer_refresh');
        const tab = app.querySelector('#lora_trainer_tab_root');
        const installed = app.querySelector('#lora_trainer_result [data-installed]');
        const path = installed ? installed.getAttribute('data-installed') : null;
        if (path && lastInstalled !== null && path !== lastInstalled) refreshLoraTabs();
        if (path) lastInstalled = path;
        else if (lastInstalled === null) lastInstalled = '';
        if (!refresh || !visible(tab)) return;
        const progress = app.querySelector('#lora_trainer_progress [data-stamp]');
        const stamp = progress ? progress.getAttribute('data-stamp') : null;
        const now = Date.now();
        // One request at a time: click when the previous answer arrived (the stamp changed).
        if (stamp !== lastStamp || now - lastClick > STALL_MS) {
            lastStamp = stamp;
            lastClick = now;
            refresh.click();
        }
    }

    // A weight in the test's ranking table (ui/ranking_table.py) sends its `<lora:name:w>, trigger`;
    // the line under the Result buttons says what happened (the same words as the Python side's).
    const SENT_TEXT = {
        'sent': 'Sent to txt2img: ',
        'no-txt2img': 'This page has no txt2img prompt to send to (the standalone app has none): copy ',
    };

    function onRankingClick(event) {
        // composedPath: the real target also when gradio renders inside a shadow root
        const path = event.composedPath ? event.composedPath() : [event.target];
        const button = path.find((el) => el.getAttribute && el.hasAttribute('data-lt-prompt')
            && el.closest && el.closest('#lora_trainer_ranking'));
        if (!button) return;
        event.preventDefault();
        const prompt = button.getAttribute('data-lt-prompt');
        const outcome = loraTrainerSendToTxt2img(prompt, '')[1];
        const message = root().querySelector('#lora_trainer_result_message');
        if (message) {
            const p = document.createElement('p');
            p.className = outcome === 'sent' ? 'lt-note' : 'lt-error';
            p.textContent = (SENT_TEXT[outcome] || '') + prompt;
            message.replaceChildren(p);
        }
    }

    function loraTrainerInit() {
        if (window.loraTrainerTimer) return;
        window.loraTrainerTimer = setInterval(tick, POLL_MS);
        document.addEventListener('click', onRankingClick, true);
    }

    window.loraTrainerSendToTxt2img = loraTrainerSendToTxt2img;
    window.loraTrainerInit = loraTrainerInit;
    window.loraTrainerRefreshLoraTabs = refreshLoraTabs;
    if (typeof onUiLoaded === 'function') onUiLoaded(loraTrainerInit);
})();
