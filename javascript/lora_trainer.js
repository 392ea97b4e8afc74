// sd-webui-lora-trainer: browser-side helpers for the Train LoRA tab (loaded by A1111 for every page).

// Put `<lora:name:weight>, trigger` into txt2img's prompt and switch to that tab.
// Uses A1111's own helpers (gradioApp, updateInput, switch_to_txt2img) from script.js / ui.js.
function loraTrainerSendToTxt2img(text) {
    const prompt = gradioApp().querySelector('#txt2img_prompt textarea');
    if (!prompt) return;
    prompt.value = prompt.value.trim() ? `${prompt.value.trim()}, ${text}` : text;
    updateInput(prompt);
    switch_to_txt2img();
}
