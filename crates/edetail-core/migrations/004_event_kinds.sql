-- 004: event kinds are checked against the contract (edetail-protocol `EventKind`, issue 13).
-- Types an app recorded before the check existed move into the `app.` namespace so the hub
-- accepts them; only events not yet uploaded or parked are touched. The list is the built-in
-- kinds of this version, frozen here like the rest of a released migration.
UPDATE events SET type = 'app.' || type
WHERE acked_at IS NULL AND parked_reason IS NULL
  AND type NOT LIKE 'app.%'
  AND type NOT IN (
    'call_started', 'call_ended', 'call_interrupted', 'slide_enter', 'slide_exit',
    'app_background', 'app_foreground', 'reaction', 'custom', 'survey_answer', 'note',
    'follow_up_request', 'erased', 'oversized_event', 'unsupported_api', 'veeva_clickstream',
    'veeva_clickstream_update', 'approved_email_request', 'agnitio_monitoring',
    'agnitio_open_pdf', 'agnitio_unknown_slide', 'oce_action', 'oce_page_tracking', 'oce_feedback'
  );
