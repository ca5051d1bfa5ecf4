"""`orderhub demo`: a merchant's day through the hub, locally, over real HTTP.

`day` plays the channels' traffic and prints the summary; `operations` plays the operators' part
(an outage, its DLQ and alert, a redrive; exceptions raised, handled and escalated); `traffic`
holds the sample requests (stored stories, signing, synthesis) that tests and benchmarks use too.
"""
