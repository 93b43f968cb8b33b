/** The inbox page's entry: mount the app, find out whether a session is already there. */
import { render } from "preact"
import { boot } from "./actions.ts"
import { App } from "./components/App.tsx"
import { unlockAudio } from "./notify.ts"

const root = document.getElementById("app")
if (root !== null) {
  render(<App />, root)
  // Sound may start only after a gesture; the first click or key press allows it.
  const unlock = () => {
    unlockAudio()
    removeEventListener("pointerdown", unlock)
    removeEventListener("keydown", unlock)
  }
  addEventListener("pointerdown", unlock)
  addEventListener("keydown", unlock)
  void boot()
}
