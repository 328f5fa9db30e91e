// The part of noVNC 1.7.0's RFB API (node_modules/@novnc/novnc/docs/API.md) the console uses.
declare module "@novnc/novnc" {
  export default class RFB extends EventTarget {
    /** `target`: the element the screen goes into; `channel`: an open or opening WebSocket. */
    constructor(target: HTMLElement, channel: WebSocket | string, options?: { shared?: boolean; wsProtocols?: string[] });
    viewOnly: boolean;
    scaleViewport: boolean;
    clipViewport: boolean;
    resizeSession: boolean;
    showDotCursor: boolean;
    focusOnClick: boolean;
    background: string;
    qualityLevel: number;
    compressionLevel: number;
    disconnect(): void;
    focus(options?: FocusOptions): void;
    blur(): void;
  }
}
