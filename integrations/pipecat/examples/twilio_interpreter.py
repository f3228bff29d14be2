"""A phone interpreter over Twilio Media Streams: a caller speaks, and hears the translation.

Twilio connects the call's audio to this server's WebSocket (``/ws``); Pipecat's Twilio serializer
turns its 8 kHz mu-law into audio frames and the translated speech back into ``media`` messages.
The pipeline is

    transport.input() -> VAD -> user turns -> TranslateSvcSTTService -> transport.output()

Pipecat's own VAD and turn processor mark the caller's turns. With ``--barge-in`` a new turn
interrupts the translation still playing (pipecat's convention for a bot's speech): the service
drops the rest of the interrupted turn's speech and the serializer sends Twilio a ``clear``, which
empties the call's playback buffer. Without it every translation is played to the end.

Run it (the integration's virtualenv: ``make -C integrations/pipecat install``)::

    python examples/twilio_interpreter.py --server 127.0.0.1:50051 --source en --target es

and point a Twilio number's voice webhook at TwiML that streams the call to it::

    <Response><Connect><Stream url="wss://YOUR-HOST/ws"/></Connect></Response>

(``TWILIO_ACCOUNT_SID``/``TWILIO_AUTH_TOKEN`` let the serializer hang the call up at the end.)
Any other telephony serializer of Pipecat's (Telnyx, Plivo, Exotel...) goes in its place.
"""

from __future__ import annotations

import argparse
import os

import uvicorn
from fastapi import FastAPI, WebSocket
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_processor import UserTurnProcessor
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from pipecat_translate_svc import TranslateSvcSTTService

PHONE_RATE = 8000  # Twilio's: the pipeline runs at it, so nothing is resampled twice


def make_app(server: str, source: str, target: str, *, barge_in: bool = False) -> FastAPI:
    """The web app Twilio's media stream connects to: one pipeline per call."""
    app = FastAPI()

    @app.websocket("/ws")
    async def media_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        _, call = await parse_telephony_websocket(websocket)  # Twilio's "connected" and "start"
        hang_up = bool(os.getenv("TWILIO_ACCOUNT_SID") and os.getenv("TWILIO_AUTH_TOKEN"))
        serializer = TwilioFrameSerializer(
            stream_sid=call["stream_id"],
            call_sid=call["call_id"],
            account_sid=os.getenv("TWILIO_ACCOUNT_SID"),
            auth_token=os.getenv("TWILIO_AUTH_TOKEN"),
            params=TwilioFrameSerializer.InputParams(auto_hang_up=hang_up),
        )
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True, serializer=serializer),
        )
        translate = TranslateSvcSTTService(address=server, source_language=source, target_languages=[target])
        # The turn processor sits before the service, so it never sees a transcript: a turn ends
        # on the VAD's silence alone (the service's transcripts go downstream, to the caller).
        turns = UserTurnProcessor(
            user_turn_strategies=UserTurnStrategies(
                start=[VADUserTurnStartStrategy(enable_interruptions=barge_in)],
                stop=[SpeechTimeoutUserTurnStopStrategy(wait_for_transcript=False)],
            )
        )
        pipeline = Pipeline(
            [transport.input(), VADProcessor(vad_analyzer=SileroVADAnalyzer()), turns, translate, transport.output()]
        )
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=PHONE_RATE, audio_out_sample_rate=PHONE_RATE),
            enable_rtvi=False,
        )

        @transport.event_handler("on_client_disconnected")
        async def _hung_up(_transport: FastAPIWebsocketTransport, _ws: WebSocket) -> None:
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description="translate a phone call with translate_svc")
    ap.add_argument("--server", default=os.getenv("TRANSLATE_SVC", "127.0.0.1:50051"), help="host:port")
    ap.add_argument("--source", default="en", help="the caller's language (en, eng, ...)")
    ap.add_argument("--target", default="es", help="the language the caller hears")
    ap.add_argument("--barge-in", action="store_true", help="a new turn interrupts the translation playing")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    app = make_app(args.server, args.source, args.target, barge_in=args.barge_in)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
