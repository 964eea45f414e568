// The camera: open one (by device id), list them, and say in words why one cannot be opened.

/** Frames come from the camera at about this size; the capture scales them to ≤ 640 wide. */
const IDEAL = { width: { ideal: 640 }, height: { ideal: 480 } };

/** Opens the camera `deviceId` ("" for the browser's choice). */
export async function openCamera(deviceId) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new CameraError(
      "This page cannot use a camera here: browsers allow cameras only on https:// or http://localhost pages. " +
        "Open the page through localhost, or serve it over https."
    );
  }
  const video = deviceId ? { ...IDEAL, deviceId: { exact: deviceId } } : IDEAL;
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio: false });
  } catch (e) {
    throw new CameraError(explainCamera(e));
  }
}

/** The video inputs, once the user has allowed one (before that, labels are empty). */
export async function listCameras() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  return devices.filter((d) => d.kind === "videoinput");
}

export class CameraError extends Error {}

function explainCamera(e) {
  switch (e?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera access was refused. Allow the camera for this site (the icon in the address bar), then press “Start camera” again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found. Connect one (or pick another under “Camera”), then press “Start camera”.";
    case "NotReadableError":
    case "AbortError":
      return "The camera is in use by another program or could not start. Close the other program, then press “Start camera”.";
    default:
      return `The camera could not be opened: ${e?.message ?? e}`;
  }
}
